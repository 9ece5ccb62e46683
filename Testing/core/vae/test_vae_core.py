"""Known answers for the VAE core: integrator Jacobians, reversibility, unbiased IS-NLL."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cochleaai.vae.estimate import evaluate
from cochleaai.vae.flows import leapfrog_step, quasi_symplectic_kdk_step, quasi_symplectic_step, sqrt_temperatures
from cochleaai.vae.likelihoods import Gaussian
from cochleaai.vae.models import HVAE, VAE, LangevinVAE, build_model

D = 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _nonlinear_grad(z):
    """Gradient of log p(z) = -z^4/4 - z^T A z / 2 - sin(z . c): a non-Gaussian target."""
    A = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=z.dtype)
    c = torch.tensor([0.5, -1.0, 0.7], dtype=z.dtype)
    return -z ** 3 - z @ A - torch.cos(z @ c).unsqueeze(-1) * c


def _step_map(t, nu, noise=None):
    def f(zv):
        z, v = zv[:D].unsqueeze(0), zv[D:].unsqueeze(0)
        z1, v1, _ = quasi_symplectic_step(z, v, _nonlinear_grad, t, nu, noise)
        return torch.cat([z1[0], v1[0]])
    return f


@pytest.mark.parametrize("t,nu", [(0.3, 0.5), (0.05, 2.0), (0.45, 0.01)])
def test_quasi_symplectic_log_jacobian_is_minus_nu_t_d(t, nu):
    torch.manual_seed(0)
    zv = torch.randn(2 * D, dtype=torch.float64)
    noise = torch.randn(1, D, dtype=torch.float64)      # a fixed draw: a constant shift
    J = torch.autograd.functional.jacobian(_step_map(t, nu, noise), zv)
    sign, logabs = torch.linalg.slogdet(J)
    assert sign > 0
    # per step: exp(-nu t) for each of the D latent dimensions
    assert logabs.item() == pytest.approx(-nu * t * D, abs=1e-10)
    _, _, reported = quasi_symplectic_step(zv[:D].unsqueeze(0), zv[D:].unsqueeze(0),
                                           _nonlinear_grad, t, nu, noise)
    assert reported.item() == pytest.approx(-nu * t * D, abs=1e-12)


@pytest.mark.parametrize("t,nu", [(0.3, 0.5), (0.45, 0.01)])
def test_kick_drift_kick_order_has_the_same_log_jacobian(t, nu):
    torch.manual_seed(1)
    zv = torch.randn(2 * D, dtype=torch.float64)
    noise = tuple(torch.randn(1, D, dtype=torch.float64) for _ in range(2))

    def f(x):
        z1, v1, _, _ = quasi_symplectic_kdk_step(x[:D].unsqueeze(0), x[D:].unsqueeze(0), _nonlinear_grad, t,
                                                 nu, noise)
        return torch.cat([z1[0], v1[0]])
    sign, logabs = torch.linalg.slogdet(torch.autograd.functional.jacobian(f, zv))
    assert sign > 0 and logabs.item() == pytest.approx(-nu * t * D, abs=1e-10)
    z, v = zv[:D].unsqueeze(0), zv[D:].unsqueeze(0)
    _, _, reported, _ = quasi_symplectic_kdk_step(z, v, _nonlinear_grad, t, nu, noise)
    assert reported.item() == pytest.approx(-nu * t * D, abs=1e-12)
    # without damping or noise: the leapfrog step itself
    za, va, _, ga = quasi_symplectic_kdk_step(z, v, _nonlinear_grad, t, 0.0, None)
    zb, vb, gb = leapfrog_step(z, v, _nonlinear_grad, t)
    for a, b in ((za, zb), (va, vb), (ga, gb)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_quasi_symplectic_per_dimension_steps():
    t = torch.tensor([[0.1, 0.2, 0.4]], dtype=torch.float64)
    zv = torch.randn(2 * D, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(_step_map(t, 0.7), zv)
    assert torch.linalg.slogdet(J)[1].item() == pytest.approx(-0.7 * 0.7, abs=1e-10)


def test_undamped_noiseless_step_is_volume_preserving_and_reversible():
    torch.manual_seed(1)
    zv = torch.randn(2 * D, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(_step_map(0.35, 0.0), zv)
    assert torch.linalg.slogdet(J)[1].item() == pytest.approx(0.0, abs=1e-10)
    z0, v0 = zv[:D].unsqueeze(0), zv[D:].unsqueeze(0)
    z1, v1, _ = quasi_symplectic_step(z0, v0, _nonlinear_grad, 0.35, 0.0)
    assert not torch.allclose(z1, z0)
    z2, v2, _ = quasi_symplectic_step(z1, -v1, _nonlinear_grad, 0.35, 0.0)
    torch.testing.assert_close(z2, z0, atol=1e-12, rtol=0)
    torch.testing.assert_close(-v2, v0, atol=1e-12, rtol=0)
    # damping breaks reversibility: the same test must then fail
    z1, v1, _ = quasi_symplectic_step(z0, v0, _nonlinear_grad, 0.35, 1.0)
    z2, _, _ = quasi_symplectic_step(z1, -v1, _nonlinear_grad, 0.35, 1.0)
    assert not torch.allclose(z2, z0, atol=1e-6)


def test_leapfrog_is_volume_preserving():
    zv = torch.randn(2 * D, dtype=torch.float64)

    def f(x):
        z, v, _ = leapfrog_step(x[:D].unsqueeze(0), x[D:].unsqueeze(0), _nonlinear_grad, 0.3)
        return torch.cat([z[0], v[0]])
    J = torch.autograd.functional.jacobian(f, zv)
    assert torch.linalg.slogdet(J)[1].item() == pytest.approx(0.0, abs=1e-10)


def test_tempering_schedule():
    roots = sqrt_temperatures(1.5, 5)
    assert roots[0] == pytest.approx(math.sqrt(1.5)) and roots[-1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(roots, roots[1:]))


# ------------------------------------------------------------ linear-Gaussian model
class _LinearEncoder(nn.Module):
    """A deliberately imperfect diagonal Gaussian posterior of the linear-Gaussian model."""

    def __init__(self, W, b, s):
        super().__init__()
        d = W.shape[1]
        cov = torch.linalg.inv(torch.eye(d, dtype=W.dtype) + W.T @ W / s ** 2)
        self.register_buffer("gain", cov @ W.T / s ** 2)
        self.register_buffer("b", b)
        self.register_buffer("log_var", torch.log(torch.diagonal(cov)) + 0.4)

    def forward(self, x):
        mean = 0.7 * (x.flatten(1) - self.b) @ self.gain.T + 0.1
        return mean, self.log_var.expand_as(mean)


def _linear_gaussian(kind, **flow):
    torch.manual_seed(3)
    d, n, s = 2, 5, 0.6
    W = torch.randn(n, d, dtype=torch.float64)
    b = torch.randn(n, dtype=torch.float64)
    decoder = nn.Linear(d, n).double()
    with torch.no_grad():
        decoder.weight.copy_(W)
        decoder.bias.copy_(b)
    likelihood = Gaussian(sigma=s, learn_sigma=False).double()
    cls = {"vae": VAE, "hvae": HVAE, "lvae": LangevinVAE}[kind]
    model = cls(_LinearEncoder(W, b, s), decoder, likelihood, d, **flow)
    marginal = torch.distributions.MultivariateNormal(b, W @ W.T + s ** 2 * torch.eye(n, dtype=W.dtype))
    x = marginal.sample((4,))
    return model, x, -marginal.log_prob(x)


@pytest.mark.parametrize("kind,flow", [
    ("vae", {}),
    ("hvae", {"steps": 2, "T0": 1.5, "t_init": 0.2}),
    ("lvae", {"steps": 3, "T0": 1.5, "nu": 0.8, "noise": 0.5, "step_mode": "random",
              "t_range": (0.1, 0.4)}),
])
def test_importance_sampled_nll_matches_the_analytic_marginal(kind, flow):
    model, x, truth = _linear_gaussian(kind, **flow)
    result = evaluate(model, x, k=5000, batch_size=4, seed=0)
    error = result["nll_per_item"] - truth.numpy()
    # IS error at k = 5000: a few hundredths of a nat for the VAE; the flows' weights have
    # heavier tails (the velocity is marginalised by sampling too). A wrong Jacobian term
    # shifts every point by nu * sum(t) * d, about 1.2 nats here (see the control test).
    assert np.max(np.abs(error)) < (0.03 if kind == "vae" else 0.1)
    assert abs(np.mean(error)) < 0.05
    # the ELBO is looser than the marginal: this encoder is not the exact posterior
    assert np.all(-result["elbo_per_item"] > truth.numpy() + 0.01)


def test_wrong_jacobian_bookkeeping_would_be_detected():
    """A Langevin flow whose damping term is dropped gives a biased NLL (control experiment)."""
    model, x, truth = _linear_gaussian("lvae", steps=3, nu=0.8, noise=0.5, step_mode="random",
                                       t_range=(0.1, 0.4))
    original = quasi_symplectic_step

    import cochleaai.vae.models as models_module

    def no_log_det(*args, **kwargs):
        z, v, log_det = original(*args, **kwargs)
        return z, v, torch.zeros_like(log_det)
    models_module.quasi_symplectic_step = no_log_det
    try:
        biased = evaluate(model, x, k=2000, batch_size=4, seed=0)["nll_per_item"]
    finally:
        models_module.quasi_symplectic_step = original
    assert np.all(np.abs(biased - truth.numpy()) > 0.2)


@pytest.mark.parametrize("kind", ["vae", "hvae", "lvae"])
def test_is_nll_is_never_looser_than_the_elbo(kind):
    torch.manual_seed(0)
    model = build_model({"model": kind, "latent_dim": 4,
                         "network": {"data_shape": [1, 12, 12], "channels": [4, 8], "hidden": 16},
                         "likelihood": {"name": "bernoulli"}, "flow": {"steps": 2}})
    x = (torch.rand(6, 1, 12, 12) > 0.5).float()
    x_before = x.clone()
    result = evaluate(model, x, k=64, seed=1)
    assert np.all(result["nll_per_item"] <= -result["elbo_per_item"] + 1e-9)
    assert result["nll"] <= -result["elbo"]
    torch.testing.assert_close(x, x_before)              # inputs untouched
    again = evaluate(model, x, k=64, seed=1)
    assert again["nll"] == result["nll"]                   # seeded


def test_evaluate_refuses_nan():
    model = build_model({"model": "vae", "latent_dim": 2,
                         "network": {"data_shape": [1, 8, 8], "channels": [4], "hidden": 8},
                         "likelihood": {"name": "bernoulli"}})
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    from cochleaai.errors import CochleaAIError
    with pytest.raises(CochleaAIError, match="NaN"):
        evaluate(model, x, k=2)
