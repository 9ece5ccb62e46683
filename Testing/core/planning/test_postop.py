"""The post-operative report on a phantom with a simulated implant: contact angles against the
truth, unnumbered and stray contacts, the rigid registration of the pre-operative CT, the command."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cochleaai import io
from cochleaai.cli import main
from cochleaai.errors import EXIT_USER_ERROR
from cochleaai.io import browser
from cochleaai.markups import Markups
from cochleaai.phantom.core import make_phantom
from cochleaai.planning import catalogue
from cochleaai.planning.postop import (UNNUMBERED_WARNING, contacts_of, map_points, postop_html, postop_report,
                                       register_preop_to_postop)
from cochleaai.segmentation.config import SegmentConfig
from cochleaai.segmentation.pipeline import segment
from cochleaai.segmentation.pose import parse_points
from cochleaai.simulation.electrodes import insert_array
from cochleaai.volume import Volume

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[3]
SEED, DEPTH_DEG, SAMPLES = 3, 540.0, 40
#: Contact angles (degrees) of the report against the truth of the simulated insertion.
TOLERANCE_DEG = 25.0


@pytest.fixture(scope="module")
def case():
    """The phantom, its implant along the true scala tympani, and the fit from its true landmarks."""
    phantom = make_phantom(SEED, fov="roi")
    implant = insert_array(np.asarray(phantom.truth["theta"], float), phantom.ct, array="flex28",
                           depth_deg=DEPTH_DEG)
    points = parse_points(phantom.landmarks.labels, phantom.landmarks.points)
    return phantom, implant, segment(phantom.ct, points, SegmentConfig(side="right", seed=0))


@pytest.fixture(scope="module")
def postop(case):
    """A post-operative CT: the phantom with the implant's metal, moved by a known rigid
    transform ``moved`` (post-operative points to pre-operative ones) onto a grid 1 mm
    inside the phantom's; and the contacts in it."""
    phantom, implant, _ = case
    metal = phantom.ct.copy(np.where(implant.metal_mask, 3071, phantom.ct.array).astype(np.int16))
    moved = sitk.Euler3DTransform()
    moved.SetCenter([float(v) for v in phantom.ct.center])
    moved.SetRotation(0.03, -0.02, 0.05)
    moved.SetTranslation([0.6, -0.4, 0.5])
    grid = Volume.empty(np.array(phantom.ct.shape) - 10, phantom.ct.spacing, phantom.ct.index_to_physical([5, 5, 5]))
    scan = metal.resample_like(grid, transform=moved).rounded_int16()
    return scan, map_points(moved.GetInverse(), implant.contacts)


def check_angles(contacts, implant):
    """The reported angles of the intracochlear contacts against the truth: the errors (deg)."""
    truth = implant.contact_depth_deg[implant.intracochlear]
    rows = [c for c, inside in zip(contacts, implant.intracochlear) if inside]
    value = np.array([c["angle_deg"]["value"] for c in rows])
    low, high = (np.array([c["angle_deg"][k] for c in rows]) for k in ("low", "high"))
    assert np.all(np.abs(value - truth) < TOLERANCE_DEG), (value, truth)
    assert np.all((low - TOLERANCE_DEG <= truth) & (truth <= high + TOLERANCE_DEG)), (low, high, truth)
    return np.abs(value - truth)


def test_numbered_contacts_get_their_true_angles_and_frequencies(case):
    _, implant, result = case
    report = postop_report(implant.contacts, True, result, array="flex28", samples=SAMPLES)
    errors = check_angles(report["contacts"], implant)
    print(f"angle errors (deg): mean {errors.mean():.1f}, max {errors.max():.1f} over {errors.size} contacts")
    assert report["warnings"] == [] and [c["contact"] for c in report["contacts"]] == list(range(1, 13))
    assert all(c["manufacturer_number"] is None for c in report["contacts"])      # MED-EL: not confirmed
    depth = report["insertion_depth_deg"]
    assert abs(depth["value"] - np.nanmax(implant.contact_depth_deg)) < TOLERANCE_DEG
    inside = [c for c in report["contacts"] if not c["outside_cochlea"] and c["angle_deg"]["value"] > 30]
    hz = [c["greenwood_hz"]["value"] for c in inside]
    assert np.all(np.diff(hz) > 0) and np.all(np.diff([c["spiral_ganglion_hz"]["value"] for c in inside]) > 0)
    page = postop_html(report)
    assert "Angular insertion depth" in page and "Greenwood" in page and "class='warning'" not in page


def test_unnumbered_contacts_give_positions_and_a_warning_but_no_frequency(case):
    _, implant, result = case
    order = np.random.default_rng(0).permutation(len(implant.contacts))
    labels = [f"C{k}" for k in range(len(order))]
    points, numbered = contacts_of(Markups(implant.contacts[order], labels))
    assert not numbered
    report = postop_report(points, numbered, result, samples=SAMPLES)
    assert report["warnings"] == [UNNUMBERED_WARNING]
    assert all("greenwood_hz" not in c and "spiral_ganglion_hz" not in c and c["contact"] is None
               for c in report["contacts"])
    back = [report["contacts"][int(np.flatnonzero(order == k)[0])] for k in range(len(order))]
    check_angles(back, implant)
    assert "no frequencies are given" in postop_html(report) and "Greenwood" not in postop_html(report)


def test_labels_E1_to_EN_are_the_numbering_in_any_order():
    points, numbered = contacts_of(Markups(np.eye(3), ["E2", "E3 (extracochlear)", "E1"]))
    assert numbered and points.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert not contacts_of(Markups(np.eye(3), ["E1", "E2", "E4"]))[1]


def test_a_contact_far_from_the_cochlea_is_outside(case):
    phantom, implant, result = case
    far = phantom.landmarks.point("center") + np.array([0.0, 0.0, 12.0])
    report = postop_report(np.vstack([implant.contacts, far]), True, result, samples=SAMPLES)
    stray = report["contacts"][-1]
    assert stray["outside_cochlea"] and stray["distance_mm"] > 3.0 and np.isnan(stray["angle_deg"]["value"])
    assert not any(c["outside_cochlea"] for c in report["contacts"][:-1])
    assert any("13 lie more than 3 mm" in n for n in report["notes"])


def test_the_registration_maps_postop_contacts_into_the_preop_scan(case, postop):
    phantom, implant, _ = case
    scan, contacts = postop
    t = register_preop_to_postop(phantom.ct, scan, around_lps=contacts.mean(axis=0))
    errors = np.linalg.norm(map_points(t, contacts) - implant.contacts, axis=1)
    print(f"registration: contacts within {errors.max():.3f} mm")
    assert errors.max() < 0.3


def test_the_command_reports_a_phantom_from_its_preop_and_postop_scans(case, postop, tmp_path):
    phantom, implant, _ = case
    scan, contacts = postop
    pdf = ["--pdf"] if browser.available() else []
    io.write_volume(phantom.ct, tmp_path / "pre.nrrd")
    io.write_volume(scan, tmp_path / "post.nrrd")
    io.write_markups_json(tmp_path / "points.mrk.json", phantom.landmarks)
    io.write_markups_json(tmp_path / "contacts.mrk.json",
                          Markups(contacts, [f"E{k + 1}" for k in range(len(contacts))], name="Electrode contacts"))
    done = subprocess.run([sys.executable, "-m", "cochleaai", "postop", str(tmp_path / "post.nrrd"), "--contacts",
                           str(tmp_path / "contacts.mrk.json"), "--side", "right", "--out", str(tmp_path / "out"),
                           "--preop", str(tmp_path / "pre.nrrd"), "--points", str(tmp_path / "points.mrk.json"),
                           "--array", "flex28", "--samples", str(SAMPLES), "--quiet"] + pdf,
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "postop.json").read_text())
    assert record["numbered"] and record["fitted_on"] == "pre-operative CT" and record["array"]["key"] == "flex28"
    assert record["transform"]["maps"].startswith("post-operative")
    check_angles(record["contacts"], implant)
    assert "Angular insertion depth" in (tmp_path / "out" / "postop.html").read_text()
    if pdf:                                       # printed by Chromium: a whole PDF beside the page
        printed = (tmp_path / "out" / "postop.pdf").read_bytes()
        assert printed.startswith(b"%PDF-") and printed.rstrip().endswith(b"%%EOF")
        assert set(json.loads(done.stdout)["files"]) == {"postop.json", "postop.html", "postop.pdf"}


def test_the_command_refuses_an_unknown_array_and_missing_points(tmp_path, capsys):
    base = ["postop", str(tmp_path / "post.nrrd"), "--contacts", str(tmp_path / "c.mrk.json"), "--side", "left",
            "--out", str(tmp_path / "out")]
    assert main(base + ["--points", str(tmp_path / "p.mrk.json"), "--array", "Nucleus 99"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Unknown electrode array" in err and all(k in err for k in catalogue.ARRAYS)
    assert main(base) == EXIT_USER_ERROR and "--points" in capsys.readouterr().err
