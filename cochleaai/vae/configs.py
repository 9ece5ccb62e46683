"""Model configurations, one dataclass per model as pythae has them: :class:`VAEConfig`,
:class:`HVAEConfig` and :class:`LVAEConfig` (the Langevin VAE). ``as_dict()`` gives the
plain dict that :func:`cochleaai.vae.models.build_model` builds from and that model cards
record (``model.config()``).

Two families share one flow description: the image models of the binarised-MNIST likelihood
benchmark (Bernoulli likelihood) and the CT volume models (Gaussian likelihood on
normalised HU). Nothing here needs torch.

The two flows share one step rule by default (``STEP_MODE``, ``STEP_RANGE``,
``STEP_INIT``): one learned step per latent dimension. A comparison of HVAE and Langevin
VAE is only fair when the step rule is the same; the thesis gives both models the same
setting and lets the damping be the one difference (its Table 4.3).

Two image architectures (:data:`ARCHITECTURES`): "small" (3 x 3 kernels, 256 hidden units,
ELU, Adam), quick to train on a CPU, and "thesis", the set-up of the thesis's MNIST
experiment, which follows Caterini et al. (2018): 5 x 5 kernels, 450 hidden units,
Softplus, a decoder output bias started at the training data's average logit, and Adamax
with the learning rate and epsilon of Table 4.3 (5e-4 and 1e-7; the text of section 4.3.1
says 5e-5, the table 5e-4).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional, Sequence

from cochleaai.vae.data import VolumeGrid

#: Initial temperature of the tempered flows (HVAE and Langevin-VAE).
T0 = 1.5
#: The step rule both flows use unless told otherwise: learned per dimension, within
#: STEP_RANGE, starting at STEP_INIT; "random" (a uniform draw in STEP_RANGE for every
#: sample and step, thesis section 4.3.1) is the ablation.
STEP_MODE = "learned"
STEP_MODES = ("learned", "random")
STEP_RANGE = (0.01, 0.5)
STEP_INIT = 0.2

#: Image networks and the optimiser that goes with them. ``network`` enters the model
#: config; ``optimizer`` is what training uses (cochleaai.vae.train.TrainConfig fields).
ARCHITECTURES = {
    "small": {"network": {"channels": [16, 32, 32], "hidden": 256, "kernel": 3, "activation": "elu",
                          "output_bias": False},
              "optimizer": {"optimizer": "adam", "lr": 1e-3, "eps": 1e-8}},
    "thesis": {"network": {"channels": [16, 32, 32], "hidden": 450, "kernel": 5, "activation": "softplus",
                           "output_bias": True},
               "optimizer": {"optimizer": "adamax", "lr": 5e-4, "eps": 1e-7}},
}


@dataclass
class VAEConfig:
    """The classic VAE: latent size, the convolutional networks (``data_shape`` [C, *spatial],
    ``channels``, ``hidden``, and optionally ``kernel``, ``activation``, ``output_bias``) and
    the likelihood (``name`` and its parameters); no flow."""

    latent_dim: int = 2
    network: dict = field(default_factory=lambda: {"data_shape": [1, 28, 28], "channels": [16, 32, 32],
                                                   "hidden": 256})
    likelihood: dict = field(default_factory=lambda: {"name": "bernoulli"})
    model: ClassVar[str] = "vae"

    def flow(self) -> dict:
        return {}

    def as_dict(self) -> dict:
        return {"model": self.model, "latent_dim": int(self.latent_dim), "network": dict(self.network),
                "likelihood": dict(self.likelihood), "flow": self.flow()}


@dataclass
class HVAEConfig(VAEConfig):
    """The Hamiltonian VAE: ``steps`` tempered leapfrog steps from temperature ``T0``; step
    sizes in ``t_range``, learned from ``t_init`` (``step_mode`` "learned") or drawn at random."""

    steps: int = 2
    T0: float = T0
    t_range: Sequence[float] = STEP_RANGE
    t_init: float = STEP_INIT
    step_mode: str = STEP_MODE
    model: ClassVar[str] = "hvae"

    def flow(self) -> dict:
        return {"steps": self.steps, "T0": self.T0, "step_mode": self.step_mode, "t_range": list(self.t_range),
                "t_init": self.t_init}


@dataclass
class LVAEConfig(HVAEConfig):
    """The quasi-symplectic Langevin VAE: the HVAE's flow settings plus the damping ``nu`` and
    fluctuation-dissipation noise. With ``nu = 0`` it is a position-Verlet flow without noise."""

    nu: float = 0.01
    #: "dkd" (thesis eq. 4.5) or "kdk" (the leapfrog's order; with nu = 0 the HVAE's step)
    integrator: str = "dkd"
    model: ClassVar[str] = "lvae"

    def flow(self) -> dict:
        return dict(super().flow(), nu=self.nu, noise="fdt", integrator=self.integrator)


#: The config class of each model kind.
CONFIGS = {c.model: c for c in (VAEConfig, HVAEConfig, LVAEConfig)}


def model_config(kind: str, steps: int, t_range: Sequence[float] = STEP_RANGE, t_init: float = STEP_INIT,
                 nu: float = 0.01, step_mode: str = STEP_MODE, integrator: str = "dkd", **common) -> VAEConfig:
    """The config of a ``kind`` model (vae, hvae, lvae); ``common``: latent_dim, network, likelihood.
    Both flows get the same step rule (``step_mode``, ``t_range``, ``t_init``)."""
    if kind not in CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {tuple(CONFIGS)}")
    if step_mode not in STEP_MODES:
        raise ValueError(f"step mode must be one of {STEP_MODES}, got {step_mode!r}")
    flow = {"steps": int(steps), "t_range": tuple(t_range), "t_init": float(t_init), "step_mode": step_mode}
    if kind == "hvae":
        return HVAEConfig(**flow, **common)
    if kind == "lvae":
        return LVAEConfig(**flow, nu=float(nu), integrator=integrator, **common)
    return VAEConfig(**common)


def mnist_model_config(kind: str, steps: int, latent: int = 64, step_mode: str = STEP_MODE,
                       architecture: str = "small", nu: float = 0.01, integrator: str = "dkd") -> VAEConfig:
    """Config of an image model for 28 x 28 binarised MNIST (Bernoulli likelihood) with the
    networks of ``architecture`` (a key of :data:`ARCHITECTURES`)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; use one of {sorted(ARCHITECTURES)}")
    network = dict(ARCHITECTURES[architecture]["network"], data_shape=[1, 28, 28])
    return model_config(kind, steps, STEP_RANGE, STEP_INIT, nu, step_mode, integrator, latent_dim=latent,
                        network=network, likelihood={"name": "bernoulli"})


def volume_model_config(kind: str = "lvae", latent_dim: int = 2, grid=None, steps: int = 2,
                        nu: float = 0.01, t_range=(0.001, 0.05), channels=(8, 16, 32),
                        hidden: int = 128, step_mode: str = STEP_MODE, t_init: float = None) -> VAEConfig:
    """Config of a model for CT volumes on ``grid`` (Gaussian likelihood on normalised HU).

    The flow steps are far smaller than for MNIST: the Gaussian likelihood over thousands
    of voxels makes log p(x | z) very steep in z, and a leapfrog step must stay below the
    posterior's width to be stable. Both flows start their learned steps at 0.8 of the upper
    end of ``t_range``: started near its lower end they hardly move in a short training and
    only add variance (``bench vae-cochlea --quick``: both flows then fall behind the VAE).
    ``t_init`` sets another start (the shipped explorer model, latent 2, did better from 0.002).
    """
    grid = grid or VolumeGrid()
    t_init = float(0.8 * t_range[1]) if t_init is None else float(t_init)
    if not t_range[0] <= t_init <= t_range[1]:
        raise ValueError(f"the first step t_init = {t_init} must lie in t_range {tuple(t_range)}")
    return model_config(kind, steps, t_range, t_init, nu, step_mode, latent_dim=int(latent_dim),
                        network={"data_shape": [1, *grid.shape], "channels": list(channels), "hidden": hidden},
                        likelihood={"name": "gaussian", "sigma": 0.3, "learn_sigma": True})
