"""The implant plan of CochleaShapeSegmentationLogic on a real MRML scene (slicer-core): the
plan table, the best array's contact table, planned contacts and path, refusals, rollback,
a left ear, and the panel's "Plan implant" button with stand-in Qt.

One quick fit of a phantom (cochlea-region, seed 3, from its landmarks) is shared by the
module; each test adds it to its own fresh scene as the module does after a fit.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
for _folder in (ROOT, ROOT / "CochleaShapeSegmentation"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")

from CochleaShapeSegmentationLib.logic import CochleaShapeSegmentationLogic  # noqa: E402
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

from cochleaai.errors import CochleaAIError  # noqa: E402
from cochleaai.io import browser  # noqa: E402
from cochleaai.phantom.core import make_phantom  # noqa: E402
from cochleaai.planning import catalogue, plan  # noqa: E402
from cochleaai.segmentation import pipeline  # noqa: E402
from cochleaai.segmentation.config import SegmentConfig  # noqa: E402
from cochleaai.segmentation.pose import parse_points  # noqa: E402
from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.slicer.results import plan as plan_nodes  # noqa: E402

QUICK = SegmentConfig(outer_iterations=3, samples=10)
#: Posterior draws of the plans here (the module's default is 200; 20 keep the tests quick).
DRAWS = 20


@pytest.fixture(scope="module")
def fit():
    """A quick fit of a cochlea-region phantom from its landmarks (right ear), and the phantom."""
    phantom = make_phantom(3, fov="roi")
    points = parse_points(phantom.landmarks.labels, phantom.landmarks.points)
    return phantom, pipeline.segment(phantom.ct, points, QUICK)


def segmented(scene, fit):
    """A Logic whose last segmentation is ``fit``'s, its nodes added to ``scene`` as after a fit."""
    phantom, result = fit
    logic = CochleaShapeSegmentationLogic()
    volume = mrml.volume_to_node(scene, phantom.ct, "Phantom CT")
    logic.add_result_nodes(logic.read_inputs(volume, settings=QUICK), result)
    return logic


def distance_to(points, curve) -> np.ndarray:
    """Distance (mm) of each point to the polyline ``curve`` (densified)."""
    t = np.linspace(0.0, 1.0, 20)[:, None, None]
    dense = (curve[:-1][None] * (1 - t) + curve[1:][None] * t).reshape(-1, 3)
    return np.min(np.linalg.norm(np.asarray(points)[:, None] - dense[None], axis=2), axis=1)


def centreline_at(result, degrees) -> np.ndarray:
    """Points (LPS) of the fitted scala tympani centreline at ``degrees`` from the round window."""
    points, along = result.scala_tympani_centerline(2000)
    return np.stack([np.interp(degrees, along, points[:, a]) for a in range(3)], axis=1)


def contact_degrees(array: dict) -> np.ndarray:
    return np.array([c["angle_deg"]["value"] for c in array["contacts"]], float)


def test_plan_adds_the_tables_contacts_and_path(scene, fit):
    logic = segmented(scene, fit)
    result = fit[1]
    count = scene.GetNumberOfNodes()
    fractions = []
    nodes = logic.plan(target_coverage=0.6, samples=DRAWS, progress=lambda f, m: fractions.append(f))
    assert fractions[-1] == 1.0 and all(b >= a - 1e-9 for a, b in zip(fractions, fractions[1:]))
    assert scene.GetNumberOfNodes() > count
    planned = logic.last_plan
    best = planned["arrays"][0]

    # the plan table: every catalogue array once, in the plan's ranked order
    table = mrml.table_to_dict(nodes["table"])
    assert nodes["table"].GetName() == "Phantom CT implant plan"
    assert table["Array"] == [a["name"] for a in planned["arrays"]]
    assert sorted(table["Array"]) == sorted(a.name for a in catalogue.ARRAYS.values())
    assert table["Rank"] == list(range(1, len(catalogue.ARRAYS) + 1))
    rank = [(over > 50.0, abs(c - 60.0)) for over, c in zip(table["Over-insertion (%)"], table["Coverage (%) mean"])]
    assert rank == sorted(rank)
    for column in ("Manufacturer", "Position", "Contacts", "Insertion (mm)", "Apical contact depth (deg) mean",
                   "Apical contact depth (deg) sd", "Apical contact depth (deg) low",
                   "Apical contact depth (deg) high", "Coverage (%) sd", "Published depth"):
        assert len(table[column]) == len(catalogue.ARRAYS), column
    assert table["Apical contact depth (deg) mean"][0] == pytest.approx(best["apical_deg"]["mean"])
    assert nodes["table"].GetAttribute(plan_nodes.TARGET_ATTRIBUTE) == "60.0"
    warning = nodes["table"].GetAttribute(plan_nodes.WARNING_ATTRIBUTE)
    assert (warning or None) == ("\n".join(planned["warnings"]) or None)

    # the best array: its contact table, its contacts (E1 the most apical) and its path
    contacts_table = mrml.table_to_dict(nodes["contacts_table"])
    assert nodes["contacts_table"].GetName() == f"Phantom CT {best['name']} contacts"
    assert contacts_table["Contact"] == list(range(1, best["n_contacts"] + 1))
    assert {"Angle (deg) mean", "Organ of Corti (%) mean", "Greenwood (Hz) low",
            "Spiral ganglion (Hz) high"} <= set(contacts_table)
    contacts = mrml.points_from_markups(nodes["contacts"])
    assert len(contacts) == best["n_contacts"]
    assert contacts.labels[0].startswith("E1 ") and contacts.labels[0].endswith("°")
    assert contacts.labels[0] == f"E1 {best['contacts'][0]['angle_deg']['value']:.0f}°"
    assert nodes["path"].IsA("vtkMRMLModelNode") and nodes["path"].GetPolyData().GetNumberOfPoints() > 100
    assert [n["key"] for n in nodes["arrays"]] == [best["key"]]

    # on the fitted cochlea: near its scala tympani centreline, the path through the contacts
    centreline, _ = result.scala_tympani_centerline(400)
    assert distance_to(contacts.points, centreline).max() < 2.0
    near = np.linalg.norm(contacts.points - centreline_at(result, contact_degrees(best)), axis=1)
    assert near.max() < 2.0                                 # and at the contact's own angle
    path = mrml.polydata_from_model(nodes["path"])
    tube = vtk_to_numpy(path.GetPoints().GetData())
    assert distance_to(contacts.points, tube[::4]).max() < 2 * plan_nodes.PATH_RADIUS_MM + 0.2

    # every plan node in one folder of the Data module, inside the segmentation's folder
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    plan_list = [nodes["table"], nodes["contacts_table"], nodes["contacts"], nodes["path"]]
    folders = {hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) for node in plan_list}
    assert len(folders) == 1
    folder = folders.pop()
    segmentation_folder = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(logic.last_nodes["segmentation"]))
    assert hierarchy.GetItemName(folder) == "Phantom CT implant plan"
    assert hierarchy.GetItemParent(folder) == segmentation_folder


def test_more_arrays_and_a_chosen_list(scene, fit):
    logic = segmented(scene, fit)
    nodes = logic.plan(arrays=["FLEX28", "ci632", "slimj"], samples=DRAWS, arrays_to_show=2)
    assert len(mrml.table_to_dict(nodes["table"])["Array"]) == 3
    assert len(nodes["arrays"]) == 2 and nodes["arrays"][0]["contacts"] is nodes["contacts"]
    for shown, array in zip(nodes["arrays"], logic.last_plan["arrays"]):
        assert mrml.points_from_markups(shown["contacts"]).labels[0].startswith("E1 ")
        assert shown["contacts"].GetNumberOfControlPoints() == array["n_contacts"]


def test_a_left_ear_is_mirrored_back_to_the_image(scene, fit):
    """The same fit read as a left ear (mirrored about the region's centre): the contacts follow
    the mirrored centreline, and would miss it without the mirror."""
    left = dataclasses.replace(fit[1], side="left")
    planned = plan.plan_insertions(left.theta, left.covariance, "left", samples=DRAWS).to_dict()
    nodes = plan_nodes.add_plan_nodes(scene, planned, left, "Left")
    contacts = mrml.points_from_markups(nodes["contacts"]).points
    expected = centreline_at(left, contact_degrees(planned["arrays"][0]))
    assert np.linalg.norm(contacts - expected, axis=1).max() < 2.0
    assert np.linalg.norm(left.to_image(contacts) - expected, axis=1).max() > 2.0   # the mirror matters
    with pytest.raises(CochleaAIError, match="left ear"):
        plan_nodes.add_plan_nodes(scene, dict(planned, side="right"), left, "Wrong")


def test_no_plan_without_a_segmentation(scene):
    logic = CochleaShapeSegmentationLogic()
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="Segment the cochlea first"):
        logic.plan(samples=DRAWS)
    assert scene.GetNumberOfNodes() == count and logic.last_plan is None


def test_the_plan_is_saved_as_a_page_and_a_pdf_and_nothing_is_replaced(scene, fit, tmp_path, monkeypatch):
    logic = segmented(scene, fit)
    with pytest.raises(CochleaAIError, match="Plan the implant first"):
        logic.save_plan_report(tmp_path / "plan.html")
    logic.plan(samples=DRAWS)
    best = logic.last_plan["arrays"][0]
    with pytest.raises(CochleaAIError, match="Choose a file name"):
        logic.save_plan_report("  ")
    # without Chromium: the page alone by default, and a PDF asked for is refused before any file
    monkeypatch.setattr(browser, "BROWSER_NAMES", ("no-such-browser",))
    monkeypatch.delenv("COCHLEAAI_BROWSER", raising=False)
    with pytest.raises(CochleaAIError, match="A PDF needs Chromium"):
        logic.save_plan_report(tmp_path / "asked" / "plan", pdf=True)
    assert not (tmp_path / "asked").exists()
    files = logic.save_plan_report(tmp_path / "alone" / "plan")          # ".html" added
    assert files == {"html": str(tmp_path / "alone" / "plan.html")}
    page = (tmp_path / "alone" / "plan.html").read_text(encoding="utf-8")
    assert "CT: Phantom CT" in page and best["name"] in page and f"{best['apical_deg']['mean']:.0f} &plusmn;" in page
    with pytest.raises(CochleaAIError, match="already exists"):
        logic.save_plan_report(tmp_path / "alone" / "plan.html")
    assert (tmp_path / "alone" / "plan.html").read_text(encoding="utf-8") == page
    monkeypatch.undo()
    if not browser.available():
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    files = logic.save_plan_report(tmp_path / "both.html")
    assert Path(files["pdf"]).read_bytes().startswith(b"%PDF-") and files["pdf"] == str(tmp_path / "both.pdf")


def test_a_failure_while_adding_the_nodes_leaves_the_scene_as_it_was(scene, fit, monkeypatch):
    logic = segmented(scene, fit)
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="Unknown electrode array"):
        logic.plan(arrays=["not an array"], samples=DRAWS)

    def no_tube(result, array):
        raise CochleaAIError("no path today")

    monkeypatch.setattr(plan_nodes, "path_tube", no_tube)      # after the tables and the points
    with pytest.raises(CochleaAIError, match="no path today"):
        logic.plan(samples=DRAWS)
    assert scene.GetNumberOfNodes() == count and logic.last_plan is None


# ------------------------------------------------------------------ the Widget, with stand-in Qt
def test_the_plan_button_plans_the_segmented_cochlea(scene, fit, monkeypatch, tmp_path):
    from module_widgets import build_widget
    from slicer_stand_in import run_jobs_in_this_process

    phantom, result = fit
    built = build_widget(monkeypatch, "CochleaShapeSegmentation", scene)
    widget, ui, calls = built.widget, built.ui, built.calls
    run_jobs_in_this_process(monkeypatch)
    assert ui.targetCoverageSpinBox.value == 75.0 and not ui.planButton.enabled
    assert widget.parameters.targetCoverage == 75.0

    def replay(volume, points, settings, progress=None):      # the fixture's fit
        progress(1.0, "fitted")
        return result

    monkeypatch.setattr(pipeline, "segment", replay)
    ui.volumeSelector.setCurrentNode(mrml.volume_to_node(scene, phantom.ct, "Phantom CT"))
    ui.applyButton.emit("clicked(bool)", False)
    assert calls["errors"] == [] and ui.planButton.enabled

    seen = {}
    real_plan = plan.plan_insertions

    def fewer_draws(*args, **kwargs):      # the panel's plan, with the test's number of draws
        seen.update(kwargs)
        return real_plan(*args, **dict(kwargs, samples=DRAWS))

    monkeypatch.setattr(plan, "plan_insertions", fewer_draws)
    widget.parameters.targetCoverage = 50.0
    ui.planButton.emit("clicked(bool)", False)
    assert calls["errors"] == [], calls["errors"]
    assert seen["target_coverage"] == pytest.approx(0.5) and seen["quality"] == result.quality
    table = scene.GetNodeByID(calls["tables"][-1])
    assert table.GetName() == "Phantom CT implant plan"
    best = widget.logic.last_plan["arrays"][0]
    assert best["name"] in ui.statusLabel.text and "50 % coverage" in ui.statusLabel.text
    for warning in widget.logic.last_plan["warnings"]:
        assert ui.statusLabel.text.startswith(warning)
    assert scene.GetFirstNodeByName(f"Phantom CT {best['name']} planned contacts") is not None
    assert ui.planButton.enabled and ui.planButton.text == "Plan implant"
    # Save report: refused without a file name (shown as a failure), then the page at the chosen file
    assert ui.saveReportButton.enabled
    ui.saveReportButton.emit("clicked(bool)", False)
    assert calls["errors"] and "Choose a file name" in str(calls["errors"][-1])
    monkeypatch.setattr(browser, "BROWSER_NAMES", ("no-such-browser",))
    monkeypatch.delenv("COCHLEAAI_BROWSER", raising=False)
    ui.reportPathLineEdit.currentPath = str(tmp_path / "report")
    ui.saveReportButton.emit("clicked(bool)", False)
    assert (tmp_path / "report.html").is_file() and str(tmp_path / "report.html") in ui.statusLabel.text
    assert "No PDF: Chromium is not installed" in ui.statusLabel.text
