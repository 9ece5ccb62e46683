"""Model configurations: the plain dicts that :func:`cochleaai.vae.models.build_model` builds
from and that model cards record.

Two families share one flow description: the image models of the binarised-MNIST likelihood
benchmark (Bernoulli likelihood) and the CT volume models (Gaussian likelihood on
normalised HU). No torch here, so the CLI and the benchmark modules can import it cheaply.
"""
from __future__ import annotations

from typing import Optional, Sequence

from cochleaai.vae.data import VolumeGrid

#: Initial temperature of the tempered flows (HVAE and Langevin-VAE).
T0 = 1.5


def flow_config(kind: str, steps: int, t_range: Sequence[float], t_init: Optional[float] = None,
                nu: float = 0.01, lvae_step_mode: str = "random") -> dict:
    """The flow part of a config: none for ``"vae"``; learned leapfrog step sizes starting
    at ``t_init`` for ``"hvae"``; damped Langevin steps with fluctuation-dissipation noise
    for ``"lvae"`` (``t_init`` recorded only when given: random steps do not use it)."""
    if kind == "hvae":
        return {"steps": steps, "T0": T0, "step_mode": "learned", "t_range": list(t_range),
                "t_init": t_init}
    if kind == "lvae":
        flow = {"steps": steps, "T0": T0, "step_mode": lvae_step_mode, "t_range": list(t_range)}
        if t_init is not None:
            flow["t_init"] = t_init
        flow.update(nu=nu, noise="fdt")
        return flow
    return {}


def mnist_model_config(kind: str, steps: int, latent: int = 64, lvae_step_mode: str = "random") -> dict:
    """Config of an image model for 28 x 28 binarised MNIST (Bernoulli likelihood)."""
    return {"model": kind, "latent_dim": latent,
            "network": {"data_shape": [1, 28, 28], "channels": [16, 32, 32], "hidden": 256},
            "likelihood": {"name": "bernoulli"},
            "flow": flow_config(kind, steps, (0.01, 0.5), 0.05, lvae_step_mode=lvae_step_mode)}


def volume_model_config(kind: str = "lvae", latent_dim: int = 2, grid=None, steps: int = 2,
                        nu: float = 0.01, t_range=(0.001, 0.05), channels=(8, 16, 32),
                        hidden: int = 128) -> dict:
    """Config of a model for CT volumes on ``grid`` (Gaussian likelihood on normalised HU).

    The flow steps are far smaller than for MNIST: the Gaussian likelihood over thousands
    of voxels makes log p(x | z) very steep in z, and a leapfrog step must stay below the
    posterior's width to be stable.
    """
    grid = grid or VolumeGrid()
    t_init = float(min(max(t_range[0] * 2, t_range[0]), t_range[1])) if kind == "hvae" else None
    return {"model": kind, "latent_dim": int(latent_dim),
            "network": {"data_shape": [1, *grid.shape], "channels": list(channels), "hidden": hidden},
            "likelihood": {"name": "gaussian", "sigma": 0.3, "learn_sigma": True},
            "flow": flow_config(kind, steps, t_range, t_init, nu)}
