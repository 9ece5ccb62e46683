"""VAE, Hamiltonian VAE and quasi-symplectic Langevin VAE with one interface.

Every model draws, for each input row, one sample of its approximate posterior and returns
two per-row quantities:

* ``log_w``: the log importance weight ``log p(x, z_K) + log N(v_K) - log q_K(z_K, v_K | x)``.
  Its mean is an unbiased ELBO estimate, and ``log mean exp`` over k draws is the IWAE
  bound used for the NLL (``estimate.py``). For the flows,
  ``log q_K = log q_0(z_0) + log N(v_0; 0, T0) - sum of the steps' log-Jacobians``.
* ``objective``: the same ELBO with the Gaussian terms of the initial draw replaced by
  their exact expectations (Rao-Blackwellisation, thesis eq. 4.13 / Caterini et al. 2018),
  used for training because its gradient has a lower variance. For the Langevin VAE it is
  ``log p(x, z_K) - 1/2 |v_K|^2 + d/2 + H[q_0] - sum_k nu t_k d``: the damping term enters
  with a minus sign, because damping contracts phase-space volume and so raises q_K.

The prior is N(0, I) on z and the target of the velocity is N(0, I).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from cochleaai.vae.configs import STEP_INIT, STEP_MODE, STEP_RANGE
from cochleaai.vae.flows import (StepSize, leapfrog_step, quasi_symplectic_kdk_step, quasi_symplectic_step,
                                 sqrt_temperatures)
from cochleaai.vae.likelihoods import build_likelihood
from cochleaai.vae.networks import ConvDecoder, ConvEncoder

_LOG_2PI = math.log(2 * math.pi)
MODEL_KINDS = ("vae", "hvae", "lvae")
#: Orders of the Langevin step: "dkd", drift-kick-drift (thesis eq. 4.5, K gradients for K
#: steps); "kdk", kick-drift-kick (the leapfrog's order, K + 1 gradients), which with nu = 0
#: is the HVAE's step
INTEGRATORS = ("dkd", "kdk")


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z * z).sum(dim=1) - 0.5 * z.shape[1] * _LOG_2PI


class VAE(nn.Module):
    """Classic VAE (Kingma & Welling 2014) with a diagonal Gaussian posterior; no flow."""

    kind = "vae"

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: nn.Module,
                 latent_dim: int, network_config: Optional[dict] = None):
        super().__init__()
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent_dim = int(latent_dim)
        self.network_config = network_config or {}

    # ------------------------------------------------------------------ densities
    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) + log p(z), per row."""
        return self.likelihood.log_prob(x, self.decoder(z)) + std_normal_log_prob(z)

    def grad_log_joint(self, x: torch.Tensor, z: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """d log p(x, z) / dz; rows are independent, so the gradient of the sum is per row."""
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            value = self.log_joint(x, z).sum()
            (grad,) = torch.autograd.grad(value, z, create_graph=create_graph)
        return grad

    # ------------------------------------------------------------------ sampling
    def flow(self, x, z0, generator, create_graph):
        """Identity for the plain VAE: (z_K, log N(v_K) - log N(v_0) + log-det, its RB form)."""
        zero = z0.new_zeros(z0.shape[0])
        return z0, zero, zero

    def sample_posterior(self, x: torch.Tensor, generator: Optional[torch.Generator] = None,
                         create_graph: bool = False) -> dict:
        mean, log_var = self.encoder(x)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        z0 = mean + torch.exp(0.5 * log_var) * eps
        log_q0 = (-0.5 * eps * eps - 0.5 * log_var).sum(dim=1) - 0.5 * self.latent_dim * _LOG_2PI
        entropy_q0 = 0.5 * (log_var + 1.0 + _LOG_2PI).sum(dim=1)
        zK, velocity_terms, velocity_terms_rb = self.flow(x, z0, generator, create_graph)
        log_pxz = self.log_joint(x, zK)
        return {"z": zK, "z0": z0, "mean": mean, "log_var": log_var,
                "log_w": log_pxz - log_q0 + velocity_terms,
                "objective": log_pxz + entropy_q0 + velocity_terms_rb}

    def loss(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Negative Rao-Blackwellised ELBO, averaged over the batch (what training minimises)."""
        return -self.sample_posterior(x, generator, create_graph=self.training)["objective"].mean()

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z] (probabilities for Bernoulli, the mean for Gaussian)."""
        return self.likelihood.mean(self.decoder(z))

    @torch.no_grad()
    def posterior_mean(self, x: torch.Tensor, samples: int = 16,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Mean of z_K over ``samples`` draws (the encoder mean for the plain VAE)."""
        if self.kind == "vae":
            return self.encoder(x)[0]
        total = 0
        for _ in range(samples):
            total = total + self.sample_posterior(x, generator)["z"]
        return total / samples

    # ------------------------------------------------------------------ config
    def flow_config(self) -> dict:
        return {}

    def config(self) -> dict:
        return {"model": self.kind, "latent_dim": self.latent_dim,
                "network": dict(self.network_config),
                "likelihood": self.likelihood.config(), "flow": self.flow_config()}


class _PhaseSpaceVAE(VAE):
    """Shared part of HVAE and Langevin VAE: tempered velocity and step sizes."""

    def __init__(self, encoder, decoder, likelihood, latent_dim, steps: int = 2, T0: float = 1.5,
                 step_mode: str = STEP_MODE, t_range: Sequence[float] = STEP_RANGE,
                 t_init: float = STEP_INIT, network_config: Optional[dict] = None):
        super().__init__(encoder, decoder, likelihood, latent_dim, network_config)
        if int(steps) < 1:
            raise ValueError("a flow needs at least one step")
        if T0 < 1:
            raise ValueError("the initial temperature T0 must be >= 1")
        self.steps, self.T0 = int(steps), float(T0)
        self.step_size = StepSize(latent_dim, self.steps, step_mode, t_range, t_init)
        self.t_init = float(t_init)

    def _initial_velocity(self, z0, generator):
        u = torch.randn(z0.shape, generator=generator, dtype=z0.dtype, device=z0.device)
        d = z0.shape[1]
        v0 = math.sqrt(self.T0) * u
        log_v0 = std_normal_log_prob(u) - 0.5 * d * math.log(self.T0)
        entropy_v0 = 0.5 * d * (1.0 + _LOG_2PI + math.log(self.T0))
        return v0, log_v0, entropy_v0

    def _dynamics(self, x, z, v, k, generator, grad_fn, state, roots):
        """One flow step k: returns (z, v, log-determinant per row)."""
        raise NotImplementedError

    def flow(self, x, z0, generator, create_graph):
        d = z0.shape[1]
        v, log_v0, entropy_v0 = self._initial_velocity(z0, generator)
        z = z0
        grad_fn = lambda zz: self.grad_log_joint(x, zz, create_graph)  # noqa: E731
        roots = sqrt_temperatures(self.T0, self.steps)
        log_det = z0.new_zeros(z0.shape[0])
        state = {}
        for k in range(self.steps):
            z, v, step_log_det = self._dynamics(x, z, v, k, generator, grad_fn, state, roots)
            ratio = roots[k + 1] / roots[k]
            v = v * ratio                                   # tempering toward T = 1
            log_det = log_det + step_log_det + d * math.log(ratio)
        log_vK = std_normal_log_prob(v)
        return z, log_vK - log_v0 + log_det, log_vK + entropy_v0 + log_det

    def flow_config(self) -> dict:
        return {"steps": self.steps, "T0": self.T0, "step_mode": self.step_size.mode,
                "t_range": [self.step_size.lo, self.step_size.hi], "t_init": self.t_init}


class HVAE(_PhaseSpaceVAE):
    """Hamiltonian VAE (Caterini, Doucet & Sejdinovic 2018): tempered leapfrog, unit Jacobian.

    K steps cost K + 1 gradient evaluations (the gradient at the end of a step is reused).
    """

    kind = "hvae"

    def _dynamics(self, x, z, v, k, generator, grad_fn, state, roots):
        t = self.step_size(k, z.shape[0], generator)
        z, v, state["grad"] = leapfrog_step(z, v, grad_fn, t, state.get("grad"))
        return z, v, z.new_zeros(z.shape[0])


class LangevinVAE(_PhaseSpaceVAE):
    """Quasi-symplectic Langevin VAE (thesis chapter 4, eq. 4.5 and 4.11-4.13).

    ``nu``: damping; ``noise``: the noise scale sigma, ``"fdt"`` for
    ``sigma_k = sqrt(2 nu T_k)`` (fluctuation-dissipation: the damped dynamics then keeps the
    tempered Gaussian velocity distribution), or ``"thesis"`` for the thesis's ``2 sqrt(T_k)``,
    which with nu = 0.01 adds far more energy than the damping removes (kept to measure it).
    ``integrator``: one of :data:`INTEGRATORS`; "dkd" (the thesis's) costs K gradient
    evaluations for K steps.
    """

    kind = "lvae"

    def __init__(self, encoder, decoder, likelihood, latent_dim, steps: int = 2, T0: float = 1.5,
                 step_mode: str = STEP_MODE, t_range: Sequence[float] = STEP_RANGE,
                 t_init: float = STEP_INIT, nu: float = 0.01, noise="fdt", integrator: str = "dkd",
                 network_config: Optional[dict] = None):
        super().__init__(encoder, decoder, likelihood, latent_dim, steps, T0, step_mode, t_range,
                         t_init, network_config)
        if nu < 0:
            raise ValueError("the damping nu must be >= 0")
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
        self.nu = float(nu)
        self.noise = noise if noise in ("fdt", "thesis") else float(noise)
        self.integrator = integrator

    def _sigma(self, k, roots) -> float:
        if self.noise == "fdt":
            return math.sqrt(2.0 * self.nu) * roots[k]
        if self.noise == "thesis":
            return 2.0 * roots[k]
        return float(self.noise)

    def _dynamics(self, x, z, v, k, generator, grad_fn, state, roots):
        t = self.step_size(k, z.shape[0], generator)
        sigma = self._sigma(k, roots)
        draws = 2 if self.integrator == "kdk" else 1
        noise = None
        if sigma > 0:
            noise = [sigma * torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
                     for _ in range(draws)]
        if self.integrator == "kdk":
            z, v, log_det, state["grad"] = quasi_symplectic_kdk_step(z, v, grad_fn, t, self.nu, noise,
                                                                     state.get("grad"))
            return z, v, log_det
        return quasi_symplectic_step(z, v, grad_fn, t, self.nu, None if noise is None else noise[0])

    def flow_config(self) -> dict:
        out = super().flow_config()
        out.update({"nu": self.nu, "noise": self.noise, "integrator": self.integrator})
        return out


_CLASSES = {"vae": VAE, "hvae": HVAE, "lvae": LangevinVAE}


def build_model(config) -> VAE:
    """A model with convolutional networks from a config: a :mod:`cochleaai.vae.configs`
    dataclass, or its dict (as written by ``model.config()`` into a card).

    The dict: ``model`` (vae, hvae, lvae), ``latent_dim``, ``network`` (``data_shape``
    [C, *spatial], ``channels``, ``hidden``, optionally ``activation``, ``kernel``,
    ``output_bias``), ``likelihood`` (``name`` ...), ``flow``.
    """
    if not isinstance(config, dict):
        config = config.as_dict()
    kind = config.get("model")
    if kind not in _CLASSES:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    latent = int(config["latent_dim"])
    net = dict(config["network"])
    data_shape = [int(s) for s in net["data_shape"]]
    channels = [int(c) for c in net.get("channels", (16, 32, 32))]
    hidden = int(net.get("hidden", 256))
    act = str(net.get("activation", "elu"))
    kernel = int(net.get("kernel", 3))
    output_bias = bool(net.get("output_bias", False))
    likelihood = build_likelihood(config["likelihood"])
    encoder = ConvEncoder(data_shape, latent, channels, hidden, act, kernel)
    decoder = ConvDecoder(data_shape, latent, channels, hidden, out_channels=data_shape[0], act=act,
                          kernel=kernel, output_bias=output_bias)
    network_config = {"data_shape": data_shape, "channels": channels, "hidden": hidden,
                      "activation": act, "kernel": kernel, "output_bias": output_bias}
    flow = dict(config.get("flow") or {})
    if kind == "vae":
        return VAE(encoder, decoder, likelihood, latent, network_config)
    flow.setdefault("steps", 2)
    return _CLASSES[kind](encoder, decoder, likelihood, latent, network_config=network_config, **flow)
