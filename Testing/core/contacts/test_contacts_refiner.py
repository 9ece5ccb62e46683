"""The learned sub-voxel refinement of electrode contacts (cochleaai.contacts.refiner)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cochleaai.contacts import refiner as R
from cochleaai.errors import CochleaAIError
from cochleaai.volume import Volume


def _arc(n=10, radius=2.0):
    t = np.linspace(0.0, 2.5, n)
    return np.stack([radius * np.cos(t), radius * np.sin(t), 0.1 * t], 1)


def test_chain_geometry_of_an_arc_and_a_line():
    arc = _arc(40)                      # a short window per point: the quadratic fits the circle
    tangents, bends = R.chain_geometry(arc)
    np.testing.assert_allclose(np.linalg.norm(tangents, axis=1), 1.0, atol=1e-9)
    # a helix of radius 2 and a slow climb: curvature about 1/2, towards the axis
    np.testing.assert_allclose(np.linalg.norm(bends, axis=1), 0.5, atol=0.02)
    inward = -arc[:, :2] / np.linalg.norm(arc[:, :2], axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", bends[:, :2] / np.linalg.norm(bends[:, :2], axis=1, keepdims=True),
                      inward) > 0.99).all()
    line = np.stack([np.arange(5.0), 0.5 * np.arange(5.0), np.zeros(5)], 1)
    t, b = R.chain_geometry(line)
    np.testing.assert_allclose(b, 0.0, atol=1e-9)
    np.testing.assert_allclose(t, np.tile([2, 1, 0], (5, 1)) / np.sqrt(5), atol=1e-9)


def test_contact_frames_are_rotations_with_the_slice_axis_second():
    tangents, _ = R.chain_geometry(_arc())
    tangents = np.concatenate([tangents, [[0.0, 0.0, 1.0]]])         # one along the slice axis
    frames = R.contact_frames(tangents, [0.0, 0.0, 1.0])
    for F, t in zip(frames, tangents):
        np.testing.assert_allclose(F.T @ F, np.eye(3), atol=1e-9)
        assert np.linalg.det(F) == pytest.approx(1.0)
        np.testing.assert_allclose(F[:, 0], t)
    assert (frames[:-1, 2, 1] > 0.9).all()                          # the slice axis, made perpendicular


def _saturated_chain(centres, sp=0.2, n=40):
    from scipy.ndimage import gaussian_filter

    vol = Volume.empty((16, n, n), sp, origin=(-(n - 1) * sp / 2, -(n - 1) * sp / 2, -1.5))
    grid = vol.physical_grid()
    metal = np.zeros(vol.shape, np.float32)
    for c in centres:
        metal += (np.linalg.norm(grid - c, axis=-1) <= 0.25)
    img = np.minimum(gaussian_filter(metal, 1.5) * 2.0e5 + 300.0, 3071.0).astype(np.float32)
    return vol.copy(img), img >= 3000.0


def test_features_of_the_chain_numbered_backwards_are_the_flipped_ones():
    """The training doubles each sample as if the chain were numbered the other way; that
    must be exactly what the features of the reversed chain are."""
    centres = _arc(7, 2.2) * [1, 1, 0]
    vol, mask = _saturated_chain(centres)
    tangents, bends = R.chain_geometry(centres)
    forward = R.contact_features(vol, mask, centres, R.contact_frames(tangents, [0, 0, 1]), bends)
    t2, b2 = R.chain_geometry(centres[::-1])
    backward = R.contact_features(vol, mask, centres[::-1], R.contact_frames(t2, [0, 0, 1]), b2)[::-1]
    np.testing.assert_allclose(R._flipped(forward), backward, atol=1e-6)
    assert forward[:, :-4].max() == pytest.approx(1.0) and forward[:, :-4].min() >= 0.0


def test_a_fitted_refiner_learns_a_known_offset_and_keeps_odd_spots(tmp_path):
    """Detections 0.1 mm off the true contacts along the slice axis: the fit learns that,
    and the saved model refines new detections by it."""
    centres = _arc(8, 2.2) * [1, 1, 0]
    vol, mask = _saturated_chain(centres)
    truth = centres + [0.0, 0.0, 0.1]
    rng = np.random.default_rng(0)
    feats, offs = [], []
    for _ in range(4):
        detected = centres + rng.normal(0.0, 0.01, centres.shape)
        f, o = R.training_samples(vol, mask, detected, truth)
        feats.append(f)
        offs.append(o)
    refiner = R.fit_refiner(np.concatenate(feats), np.concatenate(offs), ridge=1e-3)
    R.save_refiner(refiner, tmp_path / "ref")
    loaded = R.load_refiner(tmp_path / "ref.npz")
    from cochleaai.contacts.detect import chain_of_contacts, detect_contacts

    by_path = detect_contacts(vol, mask, refiner=str(tmp_path / "ref.npz")).points
    np.testing.assert_allclose(by_path, loaded.refine(vol, mask, chain_of_contacts(vol, mask)))
    moved = loaded.refine(vol, mask, centres, iterations=1)
    np.testing.assert_allclose(moved - centres, np.tile([0.0, 0.0, 0.1], (8, 1)), atol=0.02)
    assert loaded.refine(vol, mask, centres[:2]).tolist() == centres[:2].tolist()   # too short a chain
    huge = R.ContactRefiner(loaded.weights * 50.0)                  # shifts beyond MAX_SHIFT_MM
    np.testing.assert_array_equal(huge.refine(vol, mask, centres), centres)
    # rounds: a constant 0.4 mm step is taken twice, a third would carry it past MAX_MOVE_MM
    constant = np.zeros_like(loaded.weights)
    constant[-1] = [0.0, 0.4, 0.0]
    steps = R.ContactRefiner(constant).refine(vol, mask, centres, iterations=3) - centres
    np.testing.assert_allclose(np.linalg.norm(steps, axis=1), 0.8, atol=1e-9)
    with pytest.raises(CochleaAIError, match="matched contacts"):
        R.fit_refiner(np.zeros((3, feats[0].shape[1])), np.zeros((3, 3)))


def test_damaged_or_foreign_model_files_are_refused(tmp_path):
    weights = np.zeros((2 * 9 ** 3 + 4, 3))
    npz, js = R.save_refiner(R.ContactRefiner(weights), tmp_path / "m")
    assert R.load_refiner(npz).weights.shape == weights.shape
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(CochleaAIError, match="checksum"):
        R.load_refiner(npz)
    npz2, js2 = R.save_refiner(R.ContactRefiner(weights), tmp_path / "m2")
    card = json.loads(js2.read_text())
    card["box"]["step_mm"] = 0.3
    js2.write_text(json.dumps(card))
    with pytest.raises(CochleaAIError, match="another box"):
        R.load_refiner(npz2)
    with pytest.raises(CochleaAIError, match="does not exist"):
        R.load_refiner(tmp_path / "none.npz")
    with pytest.raises(CochleaAIError, match="shape"):
        R.ContactRefiner(np.zeros((5, 3)))


def test_shipped_refiner_is_used_and_its_absence_falls_back(monkeypatch):
    from cochleaai.contacts import detect as C

    refiner = R.shipped_refiner()
    if refiner is None:
        pytest.skip("no contact refiner in Resources/Models")
    assert refiner.card["samples"] > 1000
    centres = _arc(8, 2.2) * [1, 1, 0]
    vol, mask = _saturated_chain(centres)
    chain = C.chain_of_contacts(vol, mask)
    refined = C.detect_contacts(vol, mask).points
    np.testing.assert_allclose(refined, refiner.refine(vol, mask, chain))
    np.testing.assert_allclose(C.detect_contacts(vol, mask, refiner=None).points, C.out_of_the_bend(chain))
    monkeypatch.setattr(R, "_shipped", lambda: None)                 # a damaged or missing model
    np.testing.assert_allclose(C.detect_contacts(vol, mask).points, C.out_of_the_bend(chain))
