"""The parametric cochlea model and its fast shape function, against known answers."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from cochleaai import CochleaAIError
from cochleaai.shape import CochleaModel, ShapeFunction, default_params
from cochleaai.shape import geometry as G
from cochleaai.shape.mesh import surface_arrays, surface_mesh
from cochleaai.shape.rotation import rotation_matrix, rotation_matrix_derivatives

SF = ShapeFunction()


def _derivative(fn, x, order=1):
    x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fn(x)
    (g,) = torch.autograd.grad(y, x, create_graph=True)
    if order == 1:
        return y.item(), g.item()
    (h,) = torch.autograd.grad(g, x)
    return y.item(), g.item(), h.item()


@pytest.mark.parametrize("deformable", [(4.0, 0.15, 0.6, 0.2), (3.3, 0.18, 1.2, -0.5), (4.7, 0.12, -0.1, 1.0)])
def test_centerline_joins_are_smooth(deformable):
    a, b, alpha, phi = (torch.tensor(v, dtype=torch.float64) for v in deformable)
    eps = 1e-7
    r_lo = _derivative(lambda t: G.radial(t, a, b), G.THETA0 - eps)
    r_hi = _derivative(lambda t: G.radial(t, a, b), G.THETA0 + eps)
    assert r_lo[0] == pytest.approx(r_hi[0], abs=1e-6)
    assert r_lo[1] == pytest.approx(r_hi[1], abs=1e-6)
    assert G.radial(torch.tensor(0.0, dtype=torch.float64), a, b).item() == pytest.approx(G.P0)
    z_lo = _derivative(lambda t: G.longitudinal(t, alpha, phi), G.THETA1 - eps)
    z_hi = _derivative(lambda t: G.longitudinal(t, alpha, phi), G.THETA1 + eps)
    assert z_lo[0] == pytest.approx(z_hi[0], abs=1e-6)
    assert z_lo[1] == pytest.approx(z_hi[1], abs=1e-6)
    # flat at the apex end
    assert _derivative(lambda t: G.longitudinal(t, alpha, phi), G.THETA_MAX)[1] == pytest.approx(0.0, abs=1e-9)


def test_thesis_p1_sign_is_corrected():
    """The extracted thesis formula writes p1 with +2 p0; only -2 p0 joins the pieces."""
    a, b = 4.0, 0.15
    c2 = a * math.exp(-b * G.THETA0)
    c1 = -b * c2
    p2 = (c1 * G.THETA0 - c2 + G.P0) / G.THETA0 ** 2
    for sign, joins in ((-1.0, True), (+1.0, False)):
        p1 = (-c1 * G.THETA0 + 2 * c2 + sign * 2 * G.P0) / G.THETA0
        value = p2 * G.THETA0 ** 2 + p1 * G.THETA0 + G.P0
        assert (abs(value - c2) < 1e-9) == joins


def test_size_and_turns_at_initial_parameters():
    model = CochleaModel()
    ext = model.extent_mm(edge_mm=0.1)
    # about 9.8 x 7.6 x 4.4 mm (basal diameter, width, height); the cochlear parts of the six
    # real expert labels span 8.3-9.3 mm across the modiolar axis (cut at 5.5 mm from it)
    assert 8.5 < ext[0] < 10.5 and 6.5 < ext[1] < 9.5 and 3.8 < ext[2] < 5.0
    assert 2.5 <= model.turns <= 2.75
    assert 20.0 < model.duct_length() < 40.0


def _dense_surface(theta, n_tau=8000, n_s=240):
    d = torch.as_tensor(np.asarray(theta[:4]), dtype=torch.float64)
    tau = torch.linspace(G.TAU_MIN, G.TAU_MAX, n_tau, dtype=torch.float64)
    s = torch.linspace(0, 2 * math.pi, n_s + 1, dtype=torch.float64)[:-1]
    T, S = torch.meshgrid(tau, s, indexing="ij")
    local = G.surface_points(T.reshape(-1), S.reshape(-1), d).numpy()
    R = rotation_matrix(theta[4:7])
    return local @ R.T + theta[7:]


@pytest.mark.parametrize("theta", [
    default_params(),
    np.array([3.4, 0.17, 1.1, -0.4, 0.3, -0.2, 0.5, 10.0, -5.0, 2.0]),
])
def test_signed_distance_matches_brute_force(theta):
    surface = _dense_surface(theta)
    tree = cKDTree(surface)
    rng = np.random.default_rng(1)
    lo, hi = surface.min(0) - 1.5, surface.max(0) + 1.5
    pts = rng.uniform(lo, hi, size=(6000, 3))
    ref, _ = tree.query(pts)
    sdf = SF(pts, theta)
    band = ref < 1.0
    assert band.sum() > 1000
    # the dense sampling itself over-estimates distances by up to ~0.01 mm
    assert np.max(np.abs(np.abs(sdf[band]) - ref[band])) < 0.02
    assert np.median(np.abs(np.abs(sdf[band]) - ref[band])) < 1e-3
    # a point of the centreline is inside, a far point outside
    model = CochleaModel(theta)
    assert np.all(model.signed_distance(model.centerline(50)) > 0.1)
    assert model.signed_distance(np.array([hi + 5.0]))[0] < -4.0


def test_sign_agrees_with_closed_mesh_inside_test():
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

    theta = default_params()
    mesh = surface_mesh(theta, edge_mm=0.1)
    rng = np.random.default_rng(3)
    pts = rng.uniform([-3.5, -3, -1], [6, 4.5, 4], size=(3000, 3))
    poly = vtk.vtkPolyData()
    vp = vtk.vtkPoints()
    vp.SetData(numpy_to_vtk(pts, deep=True))
    poly.SetPoints(vp)
    sel = vtk.vtkSelectEnclosedPoints()
    sel.SetInputData(poly)
    sel.SetSurfaceData(mesh)
    sel.SetTolerance(1e-6)
    sel.Update()
    inside_vtk = vtk_to_numpy(sel.GetOutput().GetPointData().GetArray("SelectedPoints")).astype(bool)
    sdf = SF(pts, theta)
    clear = np.abs(sdf) > 0.02
    assert np.array_equal(inside_vtk[clear], sdf[clear] > 0)


def test_mesh_is_closed_and_outward():
    import vtk

    verts, tris = surface_arrays(default_params(), edge_mm=0.2)
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)                      # watertight: every edge shared by two triangles
    v = verts[tris]
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0
    # compare with the voxel count of sdf > 0 on a 0.1 mm grid
    g = np.mgrid[-3.5:6.2:0.1, -3:4.5:0.1, -1:4:0.1].reshape(3, -1).T
    inside = (SF(g, default_params()) > 0).sum() * 0.001
    assert volume > 0 and volume == pytest.approx(inside, rel=0.03)
    mesh = surface_mesh(default_params(), edge_mm=0.2)
    fe = vtk.vtkFeatureEdges()
    fe.SetInputData(mesh)
    fe.BoundaryEdgesOn()
    fe.NonManifoldEdgesOn()
    fe.FeatureEdgesOff()
    fe.ManifoldEdgesOff()
    fe.Update()
    assert fe.GetOutput().GetNumberOfCells() == 0


def test_pose_moves_the_shape_rigidly():
    rng = np.random.default_rng(2)
    local = rng.uniform([-3, -3, -1], [6, 4, 4], size=(2000, 3))
    base = default_params()
    posed = base.copy()
    posed[4:7] = [0.4, -0.3, 1.1]
    posed[7:] = [12.0, -7.0, 30.0]
    R = rotation_matrix(posed[4:7])
    np.testing.assert_allclose(SF(local @ R.T + posed[7:], posed), SF(local, base), atol=1e-6)


def test_rotation_derivatives_match_finite_differences():
    for r in (np.zeros(3), np.array([0.3, -0.7, 1.9]), np.array([1e-9, 0, 0])):
        d = rotation_matrix_derivatives(r)
        for k in range(3):
            e = np.zeros(3)
            e[k] = 1e-6
            fd = (rotation_matrix(r + e) - rotation_matrix(r - e)) / 2e-6
            np.testing.assert_allclose(d[k], fd, atol=1e-6)


def test_jacobian_matches_finite_differences():
    theta = np.array([4.1, 0.16, 0.7, 0.3, 0.2, -0.3, 0.4, 1.0, 2.0, -1.0])
    model = CochleaModel(theta)
    rng = np.random.default_rng(4)
    surface = _dense_surface(theta, 3000, 60)
    # points within 0.6 mm of the surface, away from medial ambiguities
    pts = surface[rng.choice(len(surface), 600, replace=False)] + rng.normal(0, 0.25, (600, 3))
    sdf, jac = model.signed_distance_and_jacobian(pts)
    steps = np.array([1e-4, 1e-5, 1e-4, 1e-4, 1e-5, 1e-5, 1e-5, 1e-4, 1e-4, 1e-4])
    for k in range(10):
        tp, tm = theta.copy(), theta.copy()
        tp[k] += steps[k]
        tm[k] -= steps[k]
        fd = (SF(pts, tp) - SF(pts, tm)) / (2 * steps[k])
        err = np.abs(fd - jac[:, k])
        scale = np.abs(fd).max()
        # a few points whose closest point jumps between two walls have no derivative
        assert np.median(err) < 1e-3 * scale + 1e-6, k
        assert np.mean(err < 1e-2 * scale + 1e-5) > 0.97, k


def test_labels_split_the_duct():
    model = CochleaModel()
    st = model.scala_tympani_centerline(200)
    _, lab, _ = model.labels(st)
    assert np.mean(lab == 2) > 0.95
    # a point half-way up the cross-section is in the scala vestibuli
    line = model.centerline(200)
    up = model.to_image(model.to_model(line) + np.array([0, 0, 0.3]))
    _, lab_up, part = model.labels(up)
    assert np.mean(lab_up == 3) > 0.9 and np.all(part[lab_up == 3] > 0)


def test_landmarks_are_where_they_belong():
    model = CochleaModel()
    lm = model.landmarks()
    sdf = model.signed_distance(np.stack([lm["apex"], lm["round_window"], lm["center"]]))
    assert sdf[1] > 0                        # the round window inside the duct's basal end
    # the apex (the cupula) on the modiolar axis, at the duct's apical end
    assert np.allclose(model.to_model(lm["apex"])[:2], 0.0, atol=1e-9) and abs(sdf[0]) < 0.3
    assert sdf[2] < 0                        # the modiolar axis is outside the lumen
    assert np.linalg.norm(lm["round_window"] - lm["center"]) > 4.0


def test_bad_input_is_refused():
    with pytest.raises(CochleaAIError):
        SF(np.zeros((3, 3)), np.zeros(9))
    with pytest.raises(CochleaAIError):
        SF(np.full((2, 3), np.nan), default_params())
    with pytest.raises(CochleaAIError):
        SF(np.zeros((2, 2)), default_params())
    with pytest.raises(CochleaAIError):
        CochleaModel(np.array([9.0, 0.15, 0.6, 0.2, 0, 0, 0, 0, 0, 0]))
    pts = np.ones((4, 3))
    before = pts.copy()
    SF(pts, default_params())
    assert np.array_equal(pts, before)


def test_angular_position_reads_back_the_centreline_angles():
    from cochleaai.shape import CochleaModel, default_params

    model = CochleaModel(default_params())
    points = model.scala_tympani_centerline(17)
    degrees, dist = model.angular_position(points)
    np.testing.assert_allclose(degrees, model.centerline_angles(17), atol=0.1)
    assert dist.max() < 0.01          # within the 0.1 degree sampling of the centreline
    far, _ = model.angular_position(points[:1] + 50.0)
    assert np.isnan(far).all()


def test_default_cross_section_is_the_shipped_calibration():
    """The profile in geometry.py is the one `calibrate-shape` wrote (Resources/), and the
    12-parameter prior is its spread: neither may drift from the table."""
    import json
    from pathlib import Path

    from cochleaai.segmentation.shapes import SECTION_PRIOR_SD
    from cochleaai.shape import geometry as G

    table = json.loads((Path(__file__).parents[3] / "Resources" / "shape-calibration.json").read_text())
    profile = table["profile"]
    np.testing.assert_allclose(G.WIDTH, profile["width_mm"], atol=0.006)
    np.testing.assert_allclose(G.HEIGHT, profile["height_mm"], atol=0.006)
    np.testing.assert_allclose(SECTION_PRIOR_SD, [profile["width_factor_sd"], profile["height_factor_sd"]], atol=6e-4)
    assert len(table["fits"]) == 6 and all(f["dice"] > 0.7 for f in table["fits"])


@pytest.mark.parametrize("extra", [[1.2, 0.9], [1.1, 1.3, 0.9, 1.2]])
def test_cross_section_scale_jacobian_matches_finite_differences(extra):
    from cochleaai.shape import ShapeFunction

    sf = ShapeFunction()
    theta = np.concatenate([default_params(rotation=(0.1, 0.2, 0.05), translation=(1, 2, 3)), extra])
    pts = theta[7:10] + np.random.default_rng(0).normal(0, 3, (400, 3))
    S, J = sf.evaluate(pts, theta, jacobian=True)
    near = np.abs(S) < 1.0
    assert J.shape == (400, theta.size)
    for q in range(10, theta.size):
        up, down = theta.copy(), theta.copy()
        up[q] += 1e-5
        down[q] -= 1e-5
        numeric = (sf(pts, up) - sf(pts, down)) / 2e-5
        assert np.median(np.abs(numeric - J[:, q])[near]) < 1e-5
        assert np.abs(numeric[near]).mean() > 0.01          # the scale does move the surface
    # unit scales are the 10-parameter model
    base = theta[:10]
    np.testing.assert_allclose(sf(pts, np.concatenate([base, np.ones(len(extra))])), sf(pts, base), atol=1e-9)


def test_continued_duct_follows_the_centreline_past_the_round_window():
    """Points on the duct's continuation below angle 0 are in it; the duct itself (angles
    above 0), points past the wedge's angle and points a section away are not."""
    theta = default_params(rotation=(0.2, -0.1, 0.3), translation=(1.0, -2.0, 0.5))
    model = CochleaModel(theta)
    d = torch.as_tensor(theta[:4])
    angles = np.radians([-5.0, -20.0, -40.0, 20.0, -60.0])
    local = G.centerline_points(torch.as_tensor(angles), d).numpy()
    inside = model.continued_duct(model.to_image(local), 45.0, 0.3)
    assert inside.tolist() == [True, True, True, False, False]
    # 3 mm out from the centreline in the radial direction: outside the basal section (about 2.5 mm wide)
    radial = local[:2] * (1.0 + 3.0 / np.hypot(local[:2, 0], local[:2, 1]))[:, None] * np.array([1, 1, 0]) \
        + local[:2] * np.array([0, 0, 1])
    assert not model.continued_duct(model.to_image(radial), 45.0, 0.3).any()
    assert not model.continued_duct(model.to_image(local), 0.0, 0.3).any()


@pytest.mark.parametrize("reach", [0.6, 2.4])
def test_truncated_distance_is_exact_within_its_reach(reach):
    rng = np.random.default_rng(4)
    for theta in (default_params(), np.array([3.3, 0.13, -0.2, 0.9, 0.4, -0.3, 0.2, 1.0, -0.5, 0.3, 1.05, 0.95])):
        pts = rng.uniform(-8, 8, size=(20000, 3))
        exact, J_exact = SF.evaluate(pts, theta, jacobian=True)
        cut, J_cut = SF.evaluate(pts, theta, jacobian=True, reach=reach)
        kept = cut != -reach
        # every value above -reach is the exact one, with its Jacobian; the bounding balls
        # only ever skip points that are farther out than the reach
        assert np.array_equal(cut[exact > -reach], exact[exact > -reach])
        assert np.array_equal(J_cut[kept], J_exact[kept])
        assert np.all(exact[~kept] <= -reach) and np.all(J_cut[~kept] == 0)
        assert 0.05 < kept.mean() < 0.6          # most of a 16 mm cube is skipped
    with pytest.raises(CochleaAIError, match="reach"):
        SF.evaluate(pts, default_params(), reach=0.0)


def test_surface_balls_hold_the_dense_surface():
    for d in ((3.99, 0.15, 0.56, 0.2), (4.6, 0.17, 1.0, -0.5), (3.2, 0.12, -0.2, 0.8)):
        theta = np.concatenate([d, np.zeros(6)])          # model frame: no pose
        surface = _dense_surface(theta, n_tau=12000, n_s=48)
        centres, radii = SF.table(np.asarray(d)).balls
        gap = np.full(len(surface), np.inf)
        for c, r in zip(centres, radii):
            gap = np.minimum(gap, np.linalg.norm(surface - c, axis=1) - r)
        assert np.all(gap <= 0)
        assert len(radii) > 50 and np.max(radii) < 2.5     # small balls: a tight bound


def test_parameter_derivative_tables_match_one_parameter_at_a_time():
    d = np.array([3.6, 0.14, 0.4, 0.3, 1.04, 0.97])
    tab = SF.table(d)
    tau = tab.taus
    for q, column in ((0, tab.param_derivs_np[:, 4 * 1 + 0]), (3, tab.param_derivs_np[:, 4 * 2 + 3]),
                      (4, tab.section_derivs_np[:, 3, 0])):
        h = 1e-6 * max(1.0, abs(d[q]))
        up, down = d.copy(), d.copy()
        up[q] += h
        down[q] -= h
        row = {0: 1, 3: 2, 4: 3}[q]           # r on a, z on phi, M11 on the width scale
        expected = (G.tube_functions(tau, torch.as_tensor(up))[:, row]
                    - G.tube_functions(tau, torch.as_tensor(down))[:, row]).numpy() / (2 * h)
        np.testing.assert_allclose(column, expected, rtol=0, atol=1e-9)
    assert np.abs(tab.param_derivs_np[:, 4 * 1 + 0]).max() > 0.1     # r depends on a
