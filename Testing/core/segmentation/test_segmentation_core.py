"""Core of the logistic shape model: Student-t mixtures by EM and the EM / Gauss-Newton fit."""
import numpy as np
import pytest
from scipy import stats

from cochleaai import CochleaAIError
from cochleaai.segmentation.appearance import (StudentMixture, em_step, initial_appearance,
                                               intensity_calibration)
from cochleaai.segmentation.logistic import FitConfig, NearSurface, fit_logistic_shape
from cochleaai.segmentation.shapes import Circle, Ellipsoid, Sphere


def test_student_mixture_em_recovers_known_components():
    x = np.concatenate([stats.t.rvs(4, loc=0, scale=50, size=30000, random_state=1),
                        stats.t.rvs(10, loc=800, scale=100, size=20000, random_state=2)])
    m = StudentMixture([0.5, 0.5], [100, 600], [200, 200], [5, 5])
    for _ in range(60):
        m = em_step(m, x)
    np.testing.assert_allclose(m.weights, [0.6, 0.4], atol=0.01)
    np.testing.assert_allclose(m.means, [0, 800], atol=5)
    np.testing.assert_allclose(m.scales, [50, 100], rtol=0.05)
    assert 3 < m.dofs[0] < 6 and 6 < m.dofs[1] < 16
    # the mixture density integrates to one
    grid = np.linspace(-3000, 4000, 70001)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz    # numpy 1.26 (Slicer 5.8) has only trapz
    assert trapezoid(np.exp(m.logpdf(grid)), grid) == pytest.approx(1.0, abs=0.01)


def test_appearance_start_adapts_to_uncalibrated_intensities():
    from cochleaai.phantom.core import make_phantom

    hu = make_phantom(seed=5, fov="roi").ct.array.astype(float).ravel()
    assert intensity_calibration(hu) == (1.0, 0.0)
    cbct = 0.05 * hu + 3000.0                       # an arbitrary linear grey scale
    a, b = intensity_calibration(cbct)
    assert a == pytest.approx(0.05, rel=0.1) and b == pytest.approx(3000.0, abs=0.05 * 150)
    start = initial_appearance(cbct)
    # the fluid component starts inside the image's own range, not at 0 HU
    assert cbct.min() < start.foreground.means[0] < cbct.max()


@pytest.mark.parametrize("shape, truth, start", [
    (Sphere(), np.array([4.0, 0.6, -0.4, 0.3]), np.array([3.0, 0.0, 0.0, 0.0])),
    (Ellipsoid(3), np.array([5.0, 3.5, 2.5, 0.5, -0.5, 0.2]), np.array([4.0, 4.0, 4.0, 0.0, 0.0, 0.0])),
])
def test_fit_recovers_a_known_shape(shape, truth, start):
    rng = np.random.default_rng(0)
    step = 0.4
    g = np.stack(np.meshgrid(*[np.arange(-8, 8, step)] * 3, indexing="ij"), -1).reshape(-1, 3)
    inside = shape.evaluate(g, truth)[0] > 0
    image = np.where(inside, 0.0, 1500.0) + rng.normal(0, 150, len(g))
    res = fit_logistic_shape(image, g, shape, start, FitConfig(l_ref=0.3, outer_iterations=10))
    # a binary image places the boundary within half a voxel
    np.testing.assert_allclose(res.theta, truth, atol=step / 2)
    assert np.all(res.std > 0) and np.all(res.std < step)
    assert np.mean((res.posterior > 0.5) == inside) > 0.99


def test_circle_prior_on_an_ellipse_has_an_interior_best_reference_length():
    """Thesis 3.4.1: fitting a circle to an ellipse, the likelihood peaks at a finite l_ref."""
    rng = np.random.default_rng(3)
    g = np.stack(np.meshgrid(np.arange(-10, 10, 0.2), np.arange(-10, 10, 0.2), indexing="ij"), -1).reshape(-1, 2)
    q = g / np.array([6.0, 4.0])
    image = np.where((q * q).sum(1) < 1, 0.0, 1000.0) + rng.normal(0, 200, len(g))
    lrefs = [0.05, 0.2, 0.6, 1.5, 4.0]
    ll = [fit_logistic_shape(image, g, Circle(), [5.0, 0.0, 0.0],
                             FitConfig(l_ref=l, outer_iterations=6)).log_likelihood for l in lrefs]
    best = int(np.argmax(ll))
    assert 0 < best < len(lrefs) - 1, ll


def test_bad_input():
    with pytest.raises(CochleaAIError):
        fit_logistic_shape(np.array([np.nan, 1.0]), np.zeros((2, 3)), Sphere(), [1, 0, 0, 0])
    with pytest.raises(CochleaAIError):
        fit_logistic_shape(np.ones(3), np.zeros((2, 3)), Sphere(), [1, 0, 0, 0])
    with pytest.raises(CochleaAIError):
        fit_logistic_shape(np.ones(2), np.zeros((2, 3)), Sphere(), [1, 0, 0, 0], FitConfig(l_ref=0))


class _Counting:
    """A shape that counts the points it is evaluated at."""

    def __init__(self, shape):
        self.shape, self.points = shape, 0
        self.names, self.lower, self.upper = shape.names, shape.lower, shape.upper

    def evaluate(self, points, theta, jacobian=False):
        self.points += len(points)
        return self.shape.evaluate(points, theta, jacobian=jacobian)


def test_shape_steps_near_the_surface_give_the_fit_of_all_points():
    rng = np.random.default_rng(2)
    g = np.stack(np.meshgrid(*[np.arange(-8, 8, 0.4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    truth = np.array([3.0, 0.5, -0.4, 0.3])
    image = np.where(Sphere().evaluate(g, truth)[0] > 0, 0.0, 1500.0) + rng.normal(0, 150, len(g))
    fits, counts = [], []
    for near in (False, True):
        shape = _Counting(Sphere())
        fits.append(fit_logistic_shape(image, g, shape, [2.4, 0.0, 0.0, 0.0],
                                       FitConfig(l_ref=0.2, outer_iterations=10, near_surface=near)))
        counts.append(shape.points)
    np.testing.assert_allclose(fits[1].theta, fits[0].theta, atol=1e-4)     # a 0.4 mm grid
    np.testing.assert_allclose(fits[1].covariance, fits[0].covariance, rtol=1e-3, atol=1e-9)
    assert fits[1].log_likelihood == pytest.approx(fits[0].log_likelihood, rel=1e-7)
    assert counts[1] < 0.5 * counts[0]        # the far points were left out of most steps


def test_near_surface_renews_its_points_when_the_surface_moves():
    g = np.stack(np.meshgrid(*[np.arange(-6, 6, 0.5)] * 3, indexing="ij"), -1).reshape(-1, 3)
    near = NearSurface(Sphere(), g, band=1.0, margin=0.5)
    near.refresh([2.0, 0, 0, 0])
    first = near.near.copy()
    # a small move: only the near points are evaluated, the others keep their values
    S, J = near.evaluate([2.2, 0, 0, 0], jacobian=True)
    exact = Sphere().evaluate(g, [2.2, 0, 0, 0])[0]
    assert near.full_evaluations == 1 and np.array_equal(near.near, first)
    np.testing.assert_allclose(S[first], exact[first])
    assert J.shape == (first.size, 4)
    # a move past the margin: every point again, and a new near set
    S, _ = near.evaluate([3.5, 0, 0, 0])
    assert near.full_evaluations == 2
    np.testing.assert_allclose(S, Sphere().evaluate(g, [3.5, 0, 0, 0])[0])
    assert not np.array_equal(near.near, first)
