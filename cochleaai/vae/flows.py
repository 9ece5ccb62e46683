"""Phase-space flows that refine the encoder's sample: Hamiltonian and quasi-symplectic Langevin.

The latent position z is paired with a velocity v of the same size d. Each flow step is an
invertible map of (z, v) whose log-Jacobian is known in closed form, so the density of the
refined sample follows from the change-of-variables formula without any Hessian.

* :func:`leapfrog_step` (HVAE, Caterini et al. 2018): half kick, drift, half kick. Both
  parts are shears, so the Jacobian is 1.
* :func:`quasi_symplectic_step` (thesis eq. 4.5, after Milstein & Tretyakov): the velocity is
  damped by ``exp(-nu t / 2)``, the position drifts half a step, the velocity gets the
  gradient kick plus noise ``sqrt(t) sigma xi``, is damped again, and the position drifts the
  other half. The drifts and the kick are shears (determinant 1); each damping scales the d
  velocity coordinates, so one step has determinant ``exp(-nu t d)`` (``exp(-nu t)`` per
  latent dimension, which is how the thesis writes it for one coordinate pair). The noise is
  drawn independently of (z, v), so for a given draw the map is a bijection with that same
  Jacobian. With nu = 0 and no noise the step is the position-Verlet (drift-kick-drift)
  scheme: symplectic, hence volume-preserving and reversible under velocity flip.

  :func:`quasi_symplectic_kdk_step` applies the same damping and noise in the leapfrog's
  order (kick, drift, kick); with nu = 0 it is the HVAE's step, so it isolates what the
  damping and the noise do from the order of the integrator.

  Sign note: the text of eq. 4.5 writes the first half drift as ``Phi - t/2 K``; a drift
  must move along the velocity in both halves for the scheme to be consistent (and for
  Property 1, the symplectic limit, to hold), so both halves use ``+ t/2 v`` here.
* Tempering (Caterini et al. 2018): the initial velocity is drawn at temperature T0 and,
  after each step k, rescaled by ``sqrt(T_k / T_{k-1})`` with ``sqrt(T_k)`` going
  quadratically from ``sqrt(T0)`` to 1; each rescaling contributes ``d log sqrt(T_k/T_{k-1})``.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn

GradFn = Callable[[torch.Tensor], torch.Tensor]


def _as_rows(t, like: torch.Tensor) -> torch.Tensor:
    """Step size as a tensor broadcastable to (B, d)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t if t.dim() else t.reshape(1, 1)


def leapfrog_step(z: torch.Tensor, v: torch.Tensor, grad_fn: GradFn, t,
                  grad: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One velocity-Verlet step; returns (z, v, gradient at the new z) so the next step reuses it."""
    t = _as_rows(t, z)
    if grad is None:
        grad = grad_fn(z)
    v = v + 0.5 * t * grad
    z = z + t * v
    grad = grad_fn(z)
    v = v + 0.5 * t * grad
    return z, v, grad


def quasi_symplectic_step(z: torch.Tensor, v: torch.Tensor, grad_fn: GradFn, t, nu: float,
                          noise: Optional[torch.Tensor] = None
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the quasi-symplectic Langevin integrator (thesis eq. 4.5).

    ``noise`` is ``sigma * xi`` (already scaled, shape of v) or None. Returns
    ``(z, v, log|det J|)`` with the log-determinant per batch row: ``-nu * sum_j t_j``.
    """
    t = _as_rows(t, z)
    damp = torch.exp(-0.5 * nu * t)
    v = v * damp
    z = z + 0.5 * t * v
    kick = t * grad_fn(z)
    if noise is not None:
        kick = kick + torch.sqrt(t) * noise
    v = (v + kick) * damp
    z = z + 0.5 * t * v
    log_det = -nu * t.expand_as(z).sum(dim=1)
    return z, v, log_det


def quasi_symplectic_kdk_step(z: torch.Tensor, v: torch.Tensor, grad_fn: GradFn, t, nu: float,
                              noise: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                              grad: Optional[torch.Tensor] = None):
    """The same damped, noisy dynamics in the leapfrog's order: damp, half kick, drift, half
    kick, damp. ``noise``: two draws ``sigma * xi`` (one per half kick, each scaled by
    ``sqrt(t / 2)``, so a step gets the noise variance of :func:`quasi_symplectic_step`) or
    None. The kicks and the drift are shears, the dampings give ``exp(-nu t d)`` as there; with
    nu = 0 and no noise this is :func:`leapfrog_step`. Returns ``(z, v, log|det J|, gradient
    at the new z)``, so the next step reuses the gradient (K + 1 evaluations for K steps)."""
    t = _as_rows(t, z)
    damp = torch.exp(-0.5 * nu * t)
    if grad is None:
        grad = grad_fn(z)
    v = v * damp + 0.5 * t * grad
    if noise is not None:
        v = v + torch.sqrt(0.5 * t) * noise[0]
    z = z + t * v
    grad = grad_fn(z)
    v = v + 0.5 * t * grad
    if noise is not None:
        v = v + torch.sqrt(0.5 * t) * noise[1]
    v = v * damp
    return z, v, -nu * t.expand_as(z).sum(dim=1), grad


def sqrt_temperatures(T0: float, steps: int) -> list:
    """sqrt(T_k), k = 0..K: quadratic from sqrt(T0) down to 1 (Caterini et al. 2018, eq. 13)."""
    s0 = math.sqrt(T0)
    if steps == 0:
        return [s0]
    return [s0 + (1.0 - s0) * (k / steps) ** 2 for k in range(steps + 1)]


class StepSize(nn.Module):
    """The integration step t of each flow step.

    ``mode="learned"``: one step per latent dimension, ``t_a + (t_b - t_a) sigmoid(w)``,
    trained with the model (Caterini et al. 2018). ``mode="random"``: drawn uniformly in
    [t_a, t_b] for each step and each sample (thesis section 4.3.1); since the draw does not
    depend on (z, v), every draw gives a valid bijection and a valid bound.
    """

    def __init__(self, dim: int, steps: int, mode: str = "learned",
                 t_range: Sequence[float] = (0.01, 0.5), t_init: float = 0.05):
        super().__init__()
        if mode not in ("learned", "random"):
            raise ValueError(f"step mode must be 'learned' or 'random', got {mode!r}")
        lo, hi = float(t_range[0]), float(t_range[1])
        if not 0 < lo < hi:
            raise ValueError(f"t_range must satisfy 0 < t_a < t_b, got {t_range}")
        self.mode, self.lo, self.hi = mode, lo, hi
        frac = min(max((t_init - lo) / (hi - lo), 1e-3), 1 - 1e-3)
        self.raw = nn.Parameter(torch.full((steps, dim), math.log(frac / (1 - frac))),
                                requires_grad=(mode == "learned"))

    def forward(self, k: int, batch: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        if self.mode == "learned":
            return self.lo + (self.hi - self.lo) * torch.sigmoid(self.raw[k]).unsqueeze(0)
        u = torch.rand((batch, 1), generator=generator, dtype=self.raw.dtype, device=self.raw.device)
        return self.lo + (self.hi - self.lo) * u
