"""Offscreen pictures drawn by Slicer's displayable managers (cochleaai.slicer.render) on a
real MRML scene holding a phantom, checked against known answers: what the views must show
where the phantom's cochlea and landmarks are, and what they must not show when hidden.

Skipped where slicer-core or offscreen rendering (EGL / OSMesa) is missing. The
``screenshot`` command's refusal without data needs neither.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import vtk
from scipy import ndimage

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import PARTIAL_PREFIX
from cochleaai.slicer import render
from cochleaai.slicer.logic import generate_phantom_nodes
from cochleaai.slicer.mrml import masks_from_segmentation, node_ids, node_to_volume
from cochleaai.volume import lps_to_ras

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def offscreen():
    if not render.offscreen_rendering_available():
        pytest.skip("vtk cannot render offscreen here (no EGL or OSMesa)")


@pytest.fixture
def phantom(scene, offscreen):
    """The roi phantom (seed 1) with only its Cochlea segment shown, so that what a view
    shows at the cochlea is the cochlea's colour."""
    nodes = generate_phantom_nodes(scene, seed=1, fov="roi")
    segmentation = nodes["segmentation"]
    display = segmentation.GetDisplayNode()
    display.SetAllSegmentsVisibility(False)
    display.SetSegmentVisibility("Cochlea", True)
    nodes["cochlea_color"] = np.array(segmentation.GetSegmentation().GetSegment("Cochlea").GetColor())
    return nodes


def _deep_inside_cochlea(nodes) -> np.ndarray:
    """RAS of the cochlea voxel farthest from its boundary."""
    reference = node_to_volume(nodes["volume"])
    mask = {s.name: m for s, m in masks_from_segmentation(nodes["segmentation"], reference)}["Cochlea"]
    k, j, i = np.unravel_index(np.argmax(ndimage.distance_transform_edt(mask)), mask.shape)
    return lps_to_ras(reference.index_to_physical(np.array([[i, j, k]], float))[0])


def _reddish(pixels: np.ndarray) -> np.ndarray:
    """Where the pixels have the cochlea's hue (red well above blue); the 3D background is
    lavender and the CT grey, neither of which is."""
    return pixels[..., 0].astype(int) - pixels[..., 2].astype(int) > 40


def test_three_d_view_shows_the_lit_surface_where_the_segment_is(scene, phantom):
    before = node_ids(scene)
    focus = render.segment_bounds(phantom["segmentation"])
    focus = (focus[0::2] + focus[1::2]) / 2
    shown = render.render_three_d(scene, (320, 200), focus=focus)
    assert shown.shape == (200, 320, 3) and shown.dtype == np.uint8
    centre = shown[60:140, 100:220]
    assert _reddish(centre).mean() > 0.2, "the cochlea's surface is not drawn around the view's centre"
    lit = shown[_reddish(shown)].astype(float)
    assert lit[:, 0].std() > 5, "the surface has one flat colour: it is not lit"
    assert node_ids(scene) == before, "the view's nodes were left in the scene"

    phantom["segmentation"].GetDisplayNode().SetVisibility(False)    # the managers are gone: no crash
    phantom["landmarks"].GetDisplayNode().SetVisibility(False)       # pink points would count as red
    hidden = render.render_three_d(scene, (320, 200), focus=focus)
    assert not _reddish(hidden[60:140, 100:220]).any(), "red pixels without the segment shown"


def test_slice_view_shows_the_segment_colour_inside_the_cochlea(scene, phantom):
    inside = _deep_inside_cochlea(phantom)
    phantom["landmarks"].GetDisplayNode().SetVisibility(False)
    view = render.render_slice(scene, phantom["volume"], "Axial", inside, (300, 200), field_of_view=12.0)
    assert view.image.shape == (200, 300, 3)
    row, col = view.pixel(inside)
    assert abs(row - 99.5) <= 1 and abs(col - 149.5) <= 1          # the view is centred on the point
    patch = view.image[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3).astype(float)
    assert _reddish(patch).all(), f"not the segment's colour at the cochlea: {patch.mean(0)}"

    phantom["segmentation"].GetDisplayNode().SetVisibility(False)
    bare = render.render_slice(scene, phantom["volume"], "Axial", inside, (300, 200), field_of_view=12.0)
    grey = bare.image[row, col].astype(int)
    assert abs(grey[0] - grey[2]) <= 2, f"the CT alone is grey, got {grey}"


def test_slice_view_draws_the_landmark_where_it_is(scene, phantom):
    phantom["segmentation"].GetDisplayNode().SetVisibility(False)
    landmarks = phantom["landmarks"]
    point = np.array(landmarks.GetNthControlPointPositionWorld(1))
    view = render.render_slice(scene, phantom["volume"], "Coronal", point, (300, 200))
    row, col = view.pixel(point)
    color = np.array(landmarks.GetDisplayNode().GetSelectedColor()) * 255
    assert np.abs(view.image[row, col].astype(float) - color).max() < 60, view.image[row, col]


def test_catalog_screenshot_is_written_whole_at_its_size(scene, phantom, tmp_path):
    path = tmp_path / "shot.png"
    pixels = render.render_catalog_screenshot(scene, phantom["volume"], phantom["segmentation"],
                                              phantom["landmarks"], path, size=(480, 300))
    assert pixels.shape == (300, 480, 3)
    reader = vtk.vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    assert reader.GetOutput().GetDimensions()[:2] == (480, 300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shot.png"]           # no staging left
    for top, left in ((0, 0), (0, 241), (151, 0), (151, 241)):                  # four views, each with content
        cell = pixels[top + render.BAR_HEIGHT:top + 149, left:left + 239]
        assert cell.std() > 10, (top, left)
    assert _reddish(pixels).any()


def test_unwritable_folder_is_refused_and_leaves_nothing(scene, phantom, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CochleaAIError, match="Cannot write"):
        render.render_catalog_screenshot(scene, phantom["volume"], phantom["segmentation"],
                                         phantom["landmarks"], blocker / "shot.png", size=(320, 200))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"] and blocker.read_text() == "not a folder"
    assert not list(tmp_path.glob(f"**/{PARTIAL_PREFIX}*"))


def test_bad_size_and_orientation_are_refused(scene, phantom):
    with pytest.raises(CochleaAIError, match="pixels"):
        render.render_three_d(scene, (4, 4))
    with pytest.raises(CochleaAIError, match="Axial"):
        render.render_slice(scene, phantom["volume"], "Oblique", (0, 0, 0))


def _screenshot_command(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cochleaai", "screenshot", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def test_screenshot_command_without_data_says_what_it_needs(tmp_path):
    out = tmp_path / "shot.png"
    done = _screenshot_command("--out", str(out), cwd=ROOT)
    assert done.returncode == 2, done.stderr
    message = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1 and "--data" in message[0] and "T02" in message[0], done.stderr
    assert message[0].rstrip().endswith(".")
    assert not out.exists()

    done = _screenshot_command("--out", str(out), "--data", str(tmp_path), cwd=ROOT)   # no specimen there
    assert done.returncode == 2 and "T02" in done.stderr and not out.exists(), done.stderr
