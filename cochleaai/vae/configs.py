"""Model configurations, one dataclass per model as pythae has them: :class:`VAEConfig`,
:class:`HVAEConfig` and :class:`LVAEConfig` (the Langevin VAE). ``as_dict()`` gives the
plain dict that :func:`cochleaai.vae.models.build_model` builds from and that model cards
record (``model.config()``).

Two families share one flow description: the image models of the binarised-MNIST likelihood
benchmark (Bernoulli likelihood) and the CT volume models (Gaussian likelihood on
normalised HU). Nothing here needs torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional, Sequence

from cochleaai.vae.data import VolumeGrid

#: Initial temperature of the tempered flows (HVAE and Langevin-VAE).
T0 = 1.5


@dataclass
class VAEConfig:
    """The classic VAE: latent size, the convolutional networks (``data_shape`` [C, *spatial],
    ``channels``, ``hidden``) and the likelihood (``name`` and its parameters); no flow."""

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
    """The Hamiltonian VAE: ``steps`` tempered leapfrog steps from temperature ``T0``, with
    learned step sizes in ``t_range`` starting at ``t_init``."""

    steps: int = 2
    T0: float = T0
    t_range: Sequence[float] = (0.01, 0.5)
    t_init: Optional[float] = 0.05
    model: ClassVar[str] = "hvae"

    def flow(self) -> dict:
        return {"steps": self.steps, "T0": self.T0, "step_mode": "learned", "t_range": list(self.t_range),
                "t_init": self.t_init}


@dataclass
class LVAEConfig(VAEConfig):
    """The quasi-symplectic Langevin VAE: ``steps`` damped steps (damping ``nu``) with
    fluctuation-dissipation noise; step sizes drawn in ``t_range`` (``step_mode``
    "random") or learned from ``t_init`` (recorded only when given)."""

    steps: int = 2
    T0: float = T0
    t_range: Sequence[float] = (0.01, 0.5)
    t_init: Optional[float] = None
    step_mode: str = "random"
    nu: float = 0.01
    model: ClassVar[str] = "lvae"

    def flow(self) -> dict:
        flow = {"steps": self.steps, "T0": self.T0, "step_mode": self.step_mode, "t_range": list(self.t_range)}
        if self.t_init is not None:
            flow["t_init"] = self.t_init
        flow.update(nu=self.nu, noise="fdt")
        return flow


#: The config class of each model kind.
CONFIGS = {c.model: c for c in (VAEConfig, HVAEConfig, LVAEConfig)}


def model_config(kind: str, steps: int, t_range: Sequence[float], t_init: Optional[float] = None,
                 nu: float = 0.01, lvae_step_mode: str = "random", **common) -> VAEConfig:
    """The config of a ``kind`` model (vae, hvae, lvae); ``common``: latent_dim, network, likelihood."""
    if kind not in CONFIGS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {tuple(CONFIGS)}")
    if kind == "hvae":
        return HVAEConfig(steps=steps, t_range=tuple(t_range), t_init=t_init, **common)
    if kind == "lvae":
        return LVAEConfig(steps=steps, t_range=tuple(t_range), t_init=t_init, step_mode=lvae_step_mode, nu=nu,
                          **common)
    return VAEConfig(**common)


def mnist_model_config(kind: str, steps: int, latent: int = 64, lvae_step_mode: str = "random") -> VAEConfig:
    """Config of an image model for 28 x 28 binarised MNIST (Bernoulli likelihood)."""
    return model_config(kind, steps, (0.01, 0.5), 0.05, lvae_step_mode=lvae_step_mode, latent_dim=latent,
                        network={"data_shape": [1, 28, 28], "channels": [16, 32, 32], "hidden": 256},
                        likelihood={"name": "bernoulli"})


def volume_model_config(kind: str = "lvae", latent_dim: int = 2, grid=None, steps: int = 2,
                        nu: float = 0.01, t_range=(0.001, 0.05), channels=(8, 16, 32),
                        hidden: int = 128) -> VAEConfig:
    """Config of a model for CT volumes on ``grid`` (Gaussian likelihood on normalised HU).

    The flow steps are far smaller than for MNIST: the Gaussian likelihood over thousands
    of voxels makes log p(x | z) very steep in z, and a leapfrog step must stay below the
    posterior's width to be stable.
    """
    grid = grid or VolumeGrid()
    t_init = float(min(max(t_range[0] * 2, t_range[0]), t_range[1])) if kind == "hvae" else None
    return model_config(kind, steps, t_range, t_init, nu, latent_dim=int(latent_dim),
                        network={"data_shape": [1, *grid.shape], "channels": list(channels), "hidden": hidden},
                        likelihood={"name": "gaussian", "sigma": 0.3, "learn_sigma": True})
