"""cochleaai.slicer.mrml on a real headless MRML scene (slicer-core): geometry, segments, markups,
tables, models, the phantom adapter and saving a scene that Slicer and cochleaai.io can read."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cochleaai import io
from cochleaai.errors import CochleaAIError
from cochleaai.segments import COCHLEA, SCALA_TYMPANI
from cochleaai.terminology import terminology_entry
from cochleaai.volume import Volume

slicer = pytest.importorskip("slicer", reason="slicer-core (MRML without Qt) is not installed")
vtk = pytest.importorskip("vtk")

from cochleaai.markups import Markups
from cochleaai.shape.rotation import rotation_matrix
from cochleaai.slicer import mrml  # noqa: E402  (after the skip: needs slicer for everything below)
from cochleaai.slicer.results.phantom import add_phantom_to_scene  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def rotation(axis, degrees) -> np.ndarray:
    """Rotation matrix of ``degrees`` about ``axis``."""
    axis = np.asarray(axis, dtype=float)
    return rotation_matrix(np.radians(degrees) * axis / np.linalg.norm(axis))


def matrix_to_numpy(m) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


@pytest.fixture
def ct() -> Volume:
    rng = np.random.default_rng(5)
    array = rng.integers(-1024, 3000, size=(6, 8, 10)).astype(np.int16)
    return Volume(array, spacing=(0.31, 0.47, 0.83), origin=(12.5, -40.25, 7.125),
                  direction=rotation([1.0, -2.0, 0.5], 37.0))


@pytest.fixture
def landmarks() -> Markups:
    return Markups(np.array([[1.5, -2.0, 3.25], [-4.0, 5.5, -6.0]]), ["Round window", "Apex"],
                      "point", "Landmarks", ["entry", ""])


def internal_counts(node) -> dict:
    """Voxels per segment straight from the node's shared labelmaps (no cochleaai code)."""
    from vtk.util import numpy_support

    segmentation = node.GetSegmentation()
    counts = {}
    for i in range(segmentation.GetNumberOfSegments()):
        seg_id = segmentation.GetNthSegmentID(i)
        segment = segmentation.GetSegment(seg_id)
        image = segment.GetRepresentation("Binary labelmap")
        values = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
        counts[seg_id] = int(np.count_nonzero(values == segment.GetLabelValue()))
    return counts


# --------------------------------------------------------------------------- import

def test_module_imports_without_slicer():
    code = "import sys; sys.modules['slicer'] = None; import cochleaai.slicer.mrml as m; print(m.__name__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "cochleaai.slicer.mrml" in result.stdout


# --------------------------------------------------------------------------- volumes

def test_volume_node_geometry_is_exact(scene, ct):
    node = mrml.volume_to_node(scene, ct, "CT")
    assert node.GetScene() is scene and node.GetDisplayNode() is not None
    assert node.GetName() == "CT" and node.IsA("vtkMRMLScalarVolumeNode")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ct.index_to_physical_matrix
    np.testing.assert_allclose(matrix_to_numpy(ijk_to_ras), expected, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(mrml.ijk_to_ras_matrix(ct), expected)

    back = mrml.node_to_volume(node)
    assert back.array.dtype == ct.array.dtype and np.array_equal(back.array, ct.array)
    np.testing.assert_array_equal(back.spacing, ct.spacing)
    np.testing.assert_array_equal(back.origin, ct.origin)
    np.testing.assert_allclose(back.direction, ct.direction, rtol=0, atol=1e-15)
    # voxel (i, j, k) lands where the Volume says, in RAS
    ijk = np.array([3.0, 5.0, 2.0, 1.0])
    ras = matrix_to_numpy(ijk_to_ras) @ ijk
    np.testing.assert_allclose(ras[:3] * [-1, -1, 1], ct.index_to_physical(ijk[:3]), atol=1e-12)


def test_volume_node_does_not_alias_arrays(scene, ct):
    original = ct.array.copy()
    node = mrml.volume_to_node(scene, ct, "CT")
    ct.array[0, 0, 0] = 1234
    assert mrml.node_to_volume(node).array[0, 0, 0] == original[0, 0, 0]
    back = mrml.node_to_volume(node)
    back.array[:] = 0
    assert np.array_equal(mrml.node_to_volume(node).array, original)


def test_volume_node_reuse_and_labelmap(scene, ct):
    node = mrml.volume_to_node(scene, ct, "CT")
    count = scene.GetNumberOfNodes()
    smaller = Volume(ct.array[:3, :4, :5].copy(), (1.0, 1.0, 2.0), (0, 0, 0))
    same = mrml.volume_to_node(scene, smaller, "CT v2", node=node)
    assert same is node and scene.GetNumberOfNodes() == count
    assert mrml.node_to_volume(node).same_geometry(smaller, 0)

    labels = ct.copy((ct.array > 500).astype(np.uint8))
    label_node = mrml.volume_to_node(scene, labels, "Labels", labelmap=True)
    assert label_node.IsA("vtkMRMLLabelMapVolumeNode")
    assert label_node.GetDisplayNode().IsA("vtkMRMLLabelMapVolumeDisplayNode")
    assert np.array_equal(mrml.node_to_volume(label_node).array, labels.array)
    with pytest.raises(CochleaAIError, match="integer"):
        mrml.volume_to_node(scene, ct.copy(ct.array * 0.5), "bad", labelmap=True)
    with pytest.raises(CochleaAIError):
        mrml.volume_to_node(scene, ct, "x", node=slicer.vtkMRMLModelNode())


def test_node_to_volume_errors_and_transforms(scene, ct):
    with pytest.raises(CochleaAIError, match="No volume"):
        mrml.node_to_volume(None)
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Empty")
    with pytest.raises(CochleaAIError, match="no voxels"):
        mrml.node_to_volume(empty)
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", "Model")
    with pytest.raises(CochleaAIError, match="not a scalar volume"):
        mrml.node_to_volume(model)
    vector = slicer.vtkMRMLVectorVolumeNode()
    image = vtk.vtkImageData()
    image.SetDimensions(3, 3, 3)
    image.AllocateScalars(vtk.VTK_FLOAT, 3)
    vector.SetAndObserveImageData(image)
    scene.AddNode(vector)
    with pytest.raises(CochleaAIError, match="values per voxel"):
        mrml.node_to_volume(vector)

    node = mrml.volume_to_node(scene, ct, "CT")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Shift")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 10.0)                           # 10 mm towards Right = -10 in LPS x
    transform.SetMatrixTransformToParent(shift)
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = mrml.node_to_volume(node)
    np.testing.assert_allclose(moved.origin, ct.origin + [-10.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(moved.direction, ct.direction, atol=1e-12)


# --------------------------------------------------------------------------- segmentations

def test_segmentation_from_masks(scene, ct, overlapping):
    volume_node = mrml.volume_to_node(scene, ct, "CT")
    masks_before = [m.copy() for _, m in overlapping]
    node = mrml.segmentation_from_masks(scene, overlapping, ct, "Ear", reference_volume_node=volume_node)
    assert node.GetScene() is scene and node.GetDisplayNode() is not None
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    assert ids == ["Cochlea", "Scala_tympani", "Scala_vestibuli"]
    for seg_id, (seg, mask) in zip(ids, overlapping):
        segment = segmentation.GetSegment(seg_id)
        assert segment.GetName() == seg.name
        np.testing.assert_allclose(segment.GetColor(), seg.color)
    assert internal_counts(node) == {seg_id: int(m.sum()) for seg_id, (_, m) in zip(ids, overlapping)}
    assert segmentation.GetSourceRepresentationName() == "Binary labelmap"
    assert node.GetNodeReferenceID(node.GetReferenceImageGeometryReferenceRole()) == volume_node.GetID()

    back = mrml.masks_from_segmentation(node)
    assert [s for s, _ in back] == [s for s, _ in overlapping]
    for (_, got), (_, want) in zip(back, overlapping):
        assert got.shape == ct.shape and np.array_equal(got, want)
    for (_, m), before in zip(overlapping, masks_before):
        assert np.array_equal(m, before)
    geometry = mrml.segmentation_reference_geometry(node)
    assert geometry.same_geometry(ct, 1e-9)


def test_masks_resampled_onto_another_reference(scene, ct, overlapping):
    node = mrml.segmentation_from_masks(scene, overlapping, ct, "Ear")
    # a grid shifted by whole voxels: exact copy with the shift
    shifted = Volume(np.zeros((8, 10, 12), np.uint8), ct.spacing, ct.index_to_physical([-1, -1, -1]), ct.direction)
    masks = mrml.masks_from_segmentation(node, reference=shifted)
    assert masks[0][1].shape == shifted.shape
    assert np.array_equal(masks[0][1][1:-1, 1:-1, 1:-1], overlapping[0][1])
    # a finer axis-aligned grid: nearest-neighbour resampling keeps the volume roughly
    fine = ct.resample_isotropic(0.25)
    masks = mrml.masks_from_segmentation(node, reference=fine)
    volume_mm3 = masks[0][1].sum() * 0.25 ** 3
    expected_mm3 = overlapping[0][1].sum() * np.prod(ct.spacing)
    assert abs(volume_mm3 - expected_mm3) / expected_mm3 < 0.35


def test_segmentation_closed_surface_and_reuse(scene, ct, overlapping):
    node = mrml.segmentation_from_masks(scene, overlapping, ct, "Ear", create_closed_surface=True)
    surface = vtk.vtkPolyData()
    assert node.GetClosedSurfaceRepresentation("Cochlea", surface)
    assert surface.GetNumberOfPoints() > 0
    count = scene.GetNumberOfNodes()
    same = mrml.segmentation_from_masks(scene, overlapping[:1], ct, "Ear again", node=node)
    assert same is node and scene.GetNumberOfNodes() == count
    assert node.GetSegmentation().GetNumberOfSegments() == 1


def test_segmentation_errors_leave_scene_unchanged(scene, ct, overlapping):
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="shape"):
        mrml.segmentation_from_masks(scene, [(COCHLEA, np.zeros((2, 2, 2), bool))], ct, "Bad")
    with pytest.raises(CochleaAIError):
        mrml.segmentation_from_masks(scene, overlapping, ct, "Bad", node=slicer.vtkMRMLModelNode())
    assert scene.GetNumberOfNodes() == count
    with pytest.raises(CochleaAIError, match="segmentation"):
        mrml.masks_from_segmentation(None)


def test_slicer_reads_io_seg_nrrd_and_io_reads_slicer_seg_nrrd(scene, tmp_path, ct, overlapping):
    path = io.write_seg_nrrd(tmp_path / "io.seg.nrrd", overlapping, ct)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Loaded")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    names = [segmentation.GetSegment(segmentation.GetNthSegmentID(i)).GetName()
             for i in range(segmentation.GetNumberOfSegments())]
    assert names == [s.name for s, _ in overlapping]
    assert list(internal_counts(node).values()) == [int(m.sum()) for _, m in overlapping]
    # Slicer found the reference geometry (it drops an unterminated last conversion parameter)
    assert mrml.segmentation_reference_geometry(node).same_geometry(ct, 1e-9)
    tag = slicer.vtkSegment.GetTerminologyEntryTagName()
    assert mrml.segment_tag(segmentation.GetSegment("Cochlea"), tag) == terminology_entry("Cochlea")
    assert mrml.segment_tag(segmentation.GetSegment("Scala_vestibuli"), tag) == terminology_entry("Scala vestibuli")
    loaded = mrml.masks_from_segmentation(node, reference=ct)
    assert [s for s, _ in loaded] == [s for s, _ in overlapping]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(loaded, overlapping))

    written = tmp_path / "slicer.seg.nrrd"
    out = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    out.SetFileName(str(written))
    assert out.WriteData(node)
    reference, segments = io.read_seg_nrrd(written)
    assert reference.same_geometry(ct, 1e-9)
    assert [s for s, _ in segments] == [s for s, _ in overlapping]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(segments, overlapping))


# --------------------------------------------------------------------------- markups

@pytest.mark.parametrize("kind,cls", [("point", "vtkMRMLMarkupsFiducialNode"),
                                      ("curve", "vtkMRMLMarkupsCurveNode")])
def test_markups_round_trip(scene, landmarks, kind, cls):
    markups = Markups(landmarks.points, landmarks.labels, kind, "Landmarks", landmarks.descriptions)
    node = mrml.markups_from_points(scene, markups)
    assert node.GetClassName() == cls and node.GetScene() is scene and node.GetDisplayNode() is not None
    assert node.GetName() == "Landmarks" and node.GetNumberOfControlPoints() == 2
    ras = [0.0, 0.0, 0.0]
    node.GetNthControlPointPosition(0, ras)
    np.testing.assert_array_equal(ras, markups.points[0] * [-1, -1, 1])
    assert node.GetNthControlPointLabel(1) == "Apex"
    back = mrml.points_from_markups(node)
    np.testing.assert_array_equal(back.points, markups.points)
    assert back.labels == markups.labels and back.kind == kind and back.descriptions == markups.descriptions


def test_markups_reuse_and_errors(scene, landmarks):
    node = mrml.markups_from_points(scene, landmarks)
    fewer = Markups(landmarks.points[:1], ["Only"], "point", "One")
    assert mrml.markups_from_points(scene, fewer, node=node) is node
    assert node.GetNumberOfControlPoints() == 1 and node.GetNthControlPointLabel(0) == "Only"
    count = scene.GetNumberOfNodes()
    curve = Markups(landmarks.points, landmarks.labels, "curve", "C")
    with pytest.raises(CochleaAIError, match="curve"):
        mrml.markups_from_points(scene, curve, node=node)
    with pytest.raises(CochleaAIError):
        mrml.markups_from_points(scene, np.zeros((2, 3)))
    with pytest.raises(CochleaAIError, match="No markups"):
        mrml.points_from_markups(None)
    assert scene.GetNumberOfNodes() == count


# --------------------------------------------------------------------------- tables

def test_table_columns(scene):
    data = {"Segment": ["Cochlea", "Scala tympani"], "Dice": [0.91, 0.85], "Voxels": [1200, 310]}
    node = mrml.table_from_dict(scene, data, "Metrics")
    assert node.GetScene() is scene and node.GetName() == "Metrics"
    assert node.GetNumberOfColumns() == 3 and node.GetNumberOfRows() == 2
    assert [node.GetColumnName(i) for i in range(3)] == ["Segment", "Dice", "Voxels"]
    table = node.GetTable()
    assert table.GetColumn(0).IsA("vtkStringArray") and table.GetColumn(1).IsA("vtkDoubleArray")
    assert table.GetColumn(2).IsA("vtkIntArray")
    assert mrml.table_to_dict(node) == data

    summary = mrml.table_from_dict(scene, {"Dice": 0.9, "Hausdorff (mm)": 1.25}, "Summary")
    assert mrml.table_to_dict(summary) == {"Name": ["Dice", "Hausdorff (mm)"], "Value": [0.9, 1.25]}
    assert mrml.table_from_dict(scene, {"x": [1.5]}, "Reused", node=summary) is summary
    assert mrml.table_to_dict(summary) == {"x": [1.5]}

    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="lengths"):
        mrml.table_from_dict(scene, {"a": [1, 2], "b": [1]}, "Bad")
    with pytest.raises(CochleaAIError, match="non-empty"):
        mrml.table_from_dict(scene, {}, "Bad")
    assert scene.GetNumberOfNodes() == count


# --------------------------------------------------------------------------- models

def test_model_from_lps_polydata(scene):
    sphere = vtk.vtkSphereSource()
    sphere.SetCenter(10.0, 20.0, 30.0)
    sphere.SetRadius(2.0)
    sphere.Update()
    lps = sphere.GetOutput()
    first_point = np.array(lps.GetPoint(5))
    first_normal = np.array(lps.GetPointData().GetNormals().GetTuple3(5))
    node = mrml.model_from_polydata(scene, lps, "Cochlea surface", color=(1.0, 0.5, 0.0))
    assert node.GetScene() is scene and node.GetDisplayNode() is not None
    np.testing.assert_allclose(node.GetDisplayNode().GetColor(), (1.0, 0.5, 0.0))
    ras = node.GetPolyData()
    assert ras is not lps and ras.GetNumberOfPoints() == lps.GetNumberOfPoints()
    np.testing.assert_allclose(ras.GetPoint(5), first_point * [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(ras.GetPointData().GetNormals().GetTuple3(5), first_normal * [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(lps.GetPoint(5), first_point)                 # input untouched
    back = mrml.polydata_from_model(node)
    np.testing.assert_allclose(back.GetPoint(5), first_point, atol=1e-6)

    as_is = mrml.model_from_polydata(scene, lps, "RAS surface", coordinate_system="RAS")
    np.testing.assert_allclose(as_is.GetPolyData().GetPoint(5), first_point)
    with pytest.raises(CochleaAIError, match="empty"):
        mrml.model_from_polydata(scene, vtk.vtkPolyData(), "Empty")


# --------------------------------------------------------------------------- phantom

def fake_phantom(ct, overlapping, landmarks):
    return SimpleNamespace(ct=ct, segments=overlapping, landmarks=landmarks, truth={"seed": 0})


def test_add_phantom_to_scene(scene, ct, overlapping, landmarks):
    nodes = add_phantom_to_scene(scene, fake_phantom(ct, overlapping, landmarks), prefix="P1")
    assert set(nodes) == {"volume", "segmentation", "landmarks"}
    volume, segmentation, points = nodes["volume"], nodes["segmentation"], nodes["landmarks"]
    assert all(n.GetScene() is scene for n in nodes.values())
    assert volume.GetName() == "P1 CT" and np.array_equal(mrml.node_to_volume(volume).array, ct.array)
    role = segmentation.GetReferenceImageGeometryReferenceRole()
    assert segmentation.GetNodeReferenceID(role) == volume.GetID()
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 3
    assert points.GetNumberOfControlPoints() == 2 and points.GetNthControlPointLabel(0) == "Round window"


def test_add_phantom_failure_leaves_scene_unchanged(scene, ct, overlapping):
    count = scene.GetNumberOfNodes()
    broken = SimpleNamespace(ct=ct, segments=overlapping, landmarks="not markups", truth={})
    with pytest.raises(CochleaAIError):
        add_phantom_to_scene(scene, broken)
    assert scene.GetNumberOfNodes() == count
    with pytest.raises(CochleaAIError, match="segments"):
        add_phantom_to_scene(scene, SimpleNamespace(ct=ct))
    assert scene.GetNumberOfNodes() == count


def test_add_phantom_rolls_back_nodes_made_before_a_failure(scene, ct, overlapping, landmarks, monkeypatch):
    def failing_markups(*args, **kwargs):
        raise CochleaAIError("simulated failure after the volume and segmentation were added")

    monkeypatch.setattr(mrml, "markups_from_points", failing_markups)
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="simulated"):
        add_phantom_to_scene(scene, fake_phantom(ct, overlapping, landmarks))
    assert scene.GetNumberOfNodes() == count
    assert scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 0
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0


# --------------------------------------------------------------------------- saving

def test_save_scene_writes_files_io_and_slicer_can_read(scene, tmp_path, ct, overlapping, landmarks):
    nodes = add_phantom_to_scene(scene, fake_phantom(ct, overlapping, landmarks), prefix="Ear")
    mrml.table_from_dict(scene, {"Dice": 0.9}, "Metrics")
    sphere = vtk.vtkSphereSource()
    sphere.Update()
    mrml.model_from_polydata(scene, sphere.GetOutput(), "Surface")

    mrml_path = mrml.save_scene(scene, tmp_path / "saved", name="demo")
    assert mrml_path == (tmp_path / "saved" / "demo.mrml").resolve() and mrml_path.is_file()
    files = sorted(p.name for p in mrml_path.parent.iterdir())
    for expected in ("Ear_CT.nrrd", "Ear_segmentation.seg.nrrd", "Ear_landmarks.mrk.json", "Metrics.tsv",
                     "Surface.vtk"):
        assert expected in files
    text = mrml_path.read_text()
    referenced = re.findall(r'fileName="([^"]*)"', text)
    assert "Ear_CT.nrrd" in referenced and all(not Path(f).is_absolute() for f in referenced)

    folder = mrml_path.parent
    volume = io.read_volume(folder / "Ear_CT.nrrd")
    assert np.array_equal(volume.array, ct.array) and volume.same_geometry(ct, 1e-9)
    reference, segments = io.read_seg_nrrd(folder / "Ear_segmentation.seg.nrrd")
    assert reference.same_geometry(ct, 1e-9)
    assert [s for s, _ in segments] == [s for s, _ in overlapping]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(segments, overlapping))
    points = io.read_markups(folder / "Ear_landmarks.mrk.json")
    np.testing.assert_allclose(points.points, landmarks.points, atol=1e-9)
    assert points.labels == landmarks.labels

    reloaded = mrml.new_scene()
    reloaded.SetURL(str(mrml_path))
    assert reloaded.Import()
    volume_node = reloaded.GetFirstNodeByName("Ear CT")
    assert np.array_equal(mrml.node_to_volume(volume_node).array, ct.array)
    seg_node = reloaded.GetFirstNodeByName("Ear segmentation")
    again = mrml.masks_from_segmentation(seg_node, reference=ct)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(again, overlapping))
    assert nodes["landmarks"].GetName() == "Ear landmarks"
    landmark_node = reloaded.GetFirstNodeByName("Ear landmarks")
    assert mrml.points_from_markups(landmark_node).labels == landmarks.labels
    reloaded.Clear(1)


# ------------------------------------------------------------------ results that fit Slicer
def test_cochlea_segments_carry_standard_terminology(scene):
    volume = Volume(np.zeros((6, 6, 6), np.int16), (0.5, 0.5, 0.5))
    mask = np.zeros(volume.shape, bool)
    mask[2:4, 2:4, 2:4] = True
    other = COCHLEA.__class__(9, "Something else", (0.5, 0.5, 0.5))
    node = mrml.segmentation_from_masks(scene, [(COCHLEA, mask), (SCALA_TYMPANI, mask), (other, mask)],
                                        volume, "seg", side="right")
    tag = slicer.vtkSegment.GetTerminologyEntryTagName()
    segmentation = node.GetSegmentation()
    entries = [mrml.segment_tag(segmentation.GetNthSegment(i), tag) for i in range(3)]
    assert entries[0] == terminology_entry("Cochlea", "right")
    assert "~SCT^80169004^Cochlear structure~SCT^24028007^Right~" in entries[0]
    assert entries[1] == terminology_entry("Scala tympani")
    assert "CochleaAI" not in entries[2]                  # Slicer's default entry, untouched


def test_terminology_file_holds_every_code_used():
    import json

    from cochleaai import terminology as t

    data = json.loads(t.TERMINOLOGY_FILE.read_text(encoding="utf-8"))
    assert data["SegmentationCategoryTypeContextName"] == t.CONTEXT
    category, = data["SegmentationCodes"]["Category"]

    def code(entry):
        return entry["CodingSchemeDesignator"], entry["CodeValue"], entry["CodeMeaning"]

    assert code(category) == t.ANATOMICAL_STRUCTURE
    types = {code(entry): entry for entry in category["Type"]}
    assert set(t.SEGMENT_TYPES.values()) <= set(types)
    assert {code(m) for m in types[t.COCHLEA]["Modifier"]} == set(t.SIDES.values())
    assert t.terminology_entry("Vestibule") is None
    assert t.terminology_entry("Cochlea", "left").split("~")[3] == "SCT^7771000^Left"


def test_a_run_goes_into_one_folder_beside_its_input(scene):
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = hierarchy.CreateStudyItem(hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient"), "CT study")
    volume = mrml.volume_to_node(scene, Volume(np.zeros((4, 4, 4), np.int16), (1.0, 1.0, 1.0)), "input")
    if not hierarchy.GetItemByDataNode(volume):        # headless: no module logic makes the items
        hierarchy.CreateItem(study, volume)
    hierarchy.SetItemParent(hierarchy.GetItemByDataNode(volume), study)
    outputs = [mrml.table_from_dict(scene, {"a": [1.0]}, "t"),
               mrml.markups_from_points(scene, Markups(np.zeros((1, 3)), ["p"], name="points"))]
    folder = mrml.put_in_folder(scene, outputs + [None], "input results", beside=volume)
    assert folder and hierarchy.GetItemParent(folder) == study
    assert hierarchy.GetItemName(folder) == "input results"
    assert [hierarchy.GetItemParent(hierarchy.GetItemByDataNode(n)) for n in outputs] == [folder, folder]
    second = mrml.put_in_folder(scene, [], "input results")           # no input: under the scene
    assert hierarchy.GetItemParent(second) == hierarchy.GetSceneItemID() and second != folder


def test_point_labels_can_be_hidden(scene):
    curve = mrml.markups_from_points(scene, Markups(np.zeros((3, 3)), ["0 deg", "1 deg", "2 deg"],
                                                       kind="curve", name="c"), show_labels=False)
    assert not curve.GetDisplayNode().GetPointLabelsVisibility()
    assert mrml.points_from_markups(curve).labels == ["0 deg", "1 deg", "2 deg"]


def test_named_point_list_waits_for_its_points_in_order(scene):
    node = mrml.named_point_list(scene, ["center", "apex", "round window"], "cochlea points")
    assert scene.IsNodePresent(node) and node.GetName() == "cochlea points"
    assert [node.GetNthControlPointLabel(i) for i in range(3)] == ["center", "apex", "round window"]
    assert node.GetFixedNumberOfControlPoints() and node.GetControlPointPlacementStartIndex() == 0
    assert mrml.points_from_markups(node).labels == []            # nothing placed yet
    node.SetNthControlPointPosition(0, 1.0, 2.0, 3.0)            # the first click
    again = mrml.named_point_list(scene, ["center", "apex", "round window"], "ignored", node=node)
    assert again is node and node.GetNumberOfControlPoints() == 3
    assert node.GetControlPointPlacementStartIndex() == 1
    assert mrml.points_from_markups(node).labels == ["center"]
    with pytest.raises(CochleaAIError, match="not a point list"):
        mrml.named_point_list(scene, ["a"], "x", node=mrml.table_from_dict(scene, {"a": [1.0]}, "t"))


# --------------------------------------------------------------------------- ROI and centreline

def test_roi_index_box_converts_a_markups_roi_to_voxel_ranges(scene):
    volume = Volume(np.zeros((20, 20, 20), np.int16), 1.0)          # identity: index = LPS mm
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "ROI")
    roi.SetXYZ(-5.0, -6.0, 7.0)                                     # RAS centre: LPS (5, 6, 7)
    roi.SetRadiusXYZ(2.0, 2.0, 2.0)
    # (k, j, i) ranges: the LPS box [3, 7] x [4, 8] x [5, 9] rounded outwards
    assert mrml.roi_index_box(roi, volume) == ((5, 10), (4, 9), (3, 8))
    assert mrml.roi_index_box(None, volume) is None
    roi.SetXYZ(-100.0, -100.0, 100.0)
    with pytest.raises(CochleaAIError, match="does not overlap the volume"):
        mrml.roi_index_box(roi, volume)


def test_the_scala_tympani_centreline_has_one_builder(scene):
    from cochleaai.shape import CochleaModel
    from cochleaai.shape.model import centerline_markups

    model = CochleaModel()
    curve = model.centerline_markups(5)
    assert curve.kind == "curve" and curve.name == "Scala tympani centerline"
    assert curve.labels == [f"{d:.0f} deg" for d in model.centerline_angles(5)]
    np.testing.assert_array_equal(curve.points, model.scala_tympani_centerline(5))
    named = centerline_markups(curve.points, model.centerline_angles(5), name="Demo scala tympani centerline")
    node = mrml.markups_from_points(scene, named)
    assert node.IsA("vtkMRMLMarkupsCurveNode") and node.GetName() == "Demo scala tympani centerline"
    assert node.GetNthControlPointLabel(4) == curve.labels[4]
