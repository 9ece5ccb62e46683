"""cochleaai.io: images, DICOM, Slicer segmentations and markups, with exact LPS geometry."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import nrrd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from cochleaai.errors import CochleaAIError
from cochleaai.io import (MARKUPS_SCHEMA, pack_segments_into_layers, read_dicom_series, read_markups, read_seg_nrrd,
                          read_volume, segment_id_from_name, write_dicom_series, write_markups_json, write_seg_nrrd,
                          write_volume)
from cochleaai.markups import Markups
from cochleaai.segments import COCHLEA, SCALA_TYMPANI, SCALA_VESTIBULI, Segment
from cochleaai.shape.rotation import rotation_matrix
from cochleaai.terminology import terminology_entry
from cochleaai.volume import Volume

ROOT = Path(__file__).resolve().parents[3]


def rotation(axis, degrees) -> np.ndarray:
    """Rotation matrix of ``degrees`` about ``axis``."""
    axis = np.asarray(axis, dtype=float)
    return rotation_matrix(np.radians(degrees) * axis / np.linalg.norm(axis))


OBLIQUE = rotation([1.0, -2.0, 0.5], 37.0)


@pytest.fixture
def ct() -> Volume:
    """A small int16 'CT' with an oblique grid, anisotropic voxels and an odd origin."""
    rng = np.random.default_rng(3)
    array = rng.integers(-1024, 3000, size=(6, 8, 10)).astype(np.int16)
    return Volume(array, spacing=(0.31, 0.47, 0.83), origin=(12.5, -40.25, 7.125), direction=OBLIQUE)


def snapshot(volume: Volume):
    return (volume.array.copy(), volume.spacing.copy(), volume.origin.copy(), volume.direction.copy())


def assert_unchanged(volume: Volume, before) -> None:
    array, spacing, origin, direction = before
    assert np.array_equal(volume.array, array)
    assert np.array_equal(volume.spacing, spacing)
    assert np.array_equal(volume.origin, origin)
    assert np.array_equal(volume.direction, direction)


def assert_same_geometry(a: Volume, b: Volume, tol: float) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=0, atol=tol)
    np.testing.assert_allclose(a.origin, b.origin, rtol=0, atol=tol)
    np.testing.assert_allclose(a.direction, b.direction, rtol=0, atol=tol)


# --------------------------------------------------------------------------- volumes

@pytest.mark.parametrize("ext,tol", [(".nrrd", 1e-12), (".nhdr", 1e-12), (".mha", 1e-12),
                                     (".mhd", 1e-12), (".nii.gz", 1e-5), (".nii", 1e-5)])
def test_volume_round_trip_keeps_voxels_and_geometry(tmp_path, ct, ext, tol):
    before = snapshot(ct)
    path = write_volume(ct, tmp_path / f"ct{ext}")
    back = read_volume(path)
    assert back.array.dtype == np.int16
    assert np.array_equal(back.array, ct.array)
    assert_same_geometry(back, ct, tol)
    assert_unchanged(ct, before)


def test_float_and_bool_volumes(tmp_path, ct):
    values = ct.copy(ct.array.astype(np.float32) * 0.125)
    back = read_volume(write_volume(values, tmp_path / "f.nrrd", compress=False))
    assert back.array.dtype == np.float32 and np.array_equal(back.array, values.array)
    mask = ct.copy(ct.array > 0)
    back = read_volume(write_volume(mask, tmp_path / "m.nrrd"))
    assert back.array.dtype == np.uint8 and np.array_equal(back.array, mask.array.astype(np.uint8))


def test_nrrd_header_axes_are_xyz_and_lps(tmp_path, ct):
    path = write_volume(ct, tmp_path / "ct.nrrd")
    data, header = nrrd.read(str(path))                     # pynrrd: axes (x, y, z)
    assert data.shape == ct.size
    assert data[3, 5, 1] == ct.array[1, 5, 3]
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(header["space directions"], (ct.direction @ np.diag(ct.spacing)).T, atol=1e-12)
    np.testing.assert_allclose(header["space origin"], ct.origin, atol=1e-12)


def test_ras_nrrd_is_read_as_lps(tmp_path, ct):
    """A NRRD written in RAS space by another tool gives the same LPS geometry."""
    flip = np.diag([-1.0, -1.0, 1.0])
    header = {"space": "right-anterior-superior",
              "space directions": (flip @ ct.direction @ np.diag(ct.spacing)).T,
              "space origin": flip @ ct.origin, "kinds": ["domain"] * 3}
    nrrd.write(str(tmp_path / "ras.nrrd"), ct.array.transpose(2, 1, 0).copy(), header)
    back = read_volume(tmp_path / "ras.nrrd")
    assert np.array_equal(back.array, ct.array)
    assert_same_geometry(back, ct, 1e-9)
    reference, segments = read_seg_nrrd(tmp_path / "ras.nrrd")
    assert_same_geometry(reference, ct, 1e-9)


def test_volume_errors_are_clear(tmp_path, ct):
    with pytest.raises(CochleaAIError, match="does not exist"):
        read_volume(tmp_path / "missing.nrrd")
    garbage = tmp_path / "garbage.nrrd"
    garbage.write_bytes(b"this is not an image at all\x00\x01")
    with pytest.raises(CochleaAIError, match="damaged"):
        read_volume(garbage)
    good = write_volume(ct, tmp_path / "cut.nrrd", compress=False)
    good.write_bytes(good.read_bytes()[:-100])              # truncated data
    with pytest.raises(CochleaAIError):
        read_volume(good)
    (tmp_path / "x.xyz").write_text("x")
    with pytest.raises(CochleaAIError, match="Unknown image file type"):
        read_volume(tmp_path / "x.xyz")
    with pytest.raises(CochleaAIError, match="Unknown image file type"):
        write_volume(ct, tmp_path / "x.png")
    sitk.WriteImage(sitk.Image([5, 4], sitk.sitkUInt8), str(tmp_path / "flat.nrrd"))
    with pytest.raises(CochleaAIError, match="3D"):
        read_volume(tmp_path / "flat.nrrd")
    sitk.WriteImage(sitk.Image([5, 4, 3], sitk.sitkVectorFloat32, 3), str(tmp_path / "vec.nrrd"))
    with pytest.raises(CochleaAIError, match="scalar"):
        read_volume(tmp_path / "vec.nrrd")
    with pytest.raises(CochleaAIError):
        read_volume(tmp_path)                               # a folder


# --------------------------------------------------------------------------- DICOM

def test_dicom_round_trip(tmp_path, ct):
    before = snapshot(ct)
    files = write_dicom_series(ct, tmp_path / "dcm", patient_name="Test^Ear",
                               series_description="Oblique test")
    assert len(files) == ct.shape[0]
    back = read_dicom_series(tmp_path / "dcm")
    assert np.array_equal(back.array, ct.array)
    assert_same_geometry(back, ct, 1e-8)
    assert_unchanged(ct, before)

    first = pydicom.dcmread(files[0])
    assert first.Modality == "CT" and first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert str(first.PatientName) == "Test^Ear" and first.SeriesDescription == "Oblique test"
    assert first.BitsAllocated == 16 and first.PixelRepresentation == 1
    assert float(first.RescaleSlope) == 1.0 and float(first.RescaleIntercept) == 0.0
    uids = {pydicom.dcmread(f).SOPInstanceUID for f in files}
    assert len(uids) == len(files)
    other = write_dicom_series(ct, tmp_path / "dcm2")
    assert pydicom.dcmread(other[0]).SeriesInstanceUID != first.SeriesInstanceUID


def test_dicom_float_volume_is_rescaled(tmp_path, ct):
    values = ct.copy(ct.array.astype(np.float32) * 0.37 + 0.05)
    write_dicom_series(values, tmp_path / "dcm")
    back = read_dicom_series(tmp_path / "dcm")
    step = (values.array.max() - values.array.min()) / 65535.0
    assert np.max(np.abs(back.array - values.array)) <= 0.51 * step + 1e-6


def test_dicom_left_handed_grid_keeps_physical_positions(tmp_path, ct):
    flipped = Volume(ct.array, ct.spacing, ct.origin, ct.direction @ np.diag([1.0, 1.0, -1.0]))
    write_dicom_series(flipped, tmp_path / "dcm")
    back = read_dicom_series(tmp_path / "dcm")
    assert np.array_equal(back.array, flipped.array[::-1])
    ijk = np.array([[0, 0, 0], [3, 2, 1], [9, 7, 5]], dtype=float)
    back_ijk = ijk.copy()
    back_ijk[:, 2] = flipped.shape[0] - 1 - ijk[:, 2]
    np.testing.assert_allclose(back.index_to_physical(back_ijk), flipped.index_to_physical(ijk), atol=1e-8)


def test_dicom_folder_problems(tmp_path, ct):
    with pytest.raises(CochleaAIError, match="does not exist"):
        read_dicom_series(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CochleaAIError, match="No DICOM"):
        read_dicom_series(tmp_path / "empty")
    small = Volume(ct.array[:2], ct.spacing, ct.origin + 50.0, ct.direction)
    write_dicom_series(ct, tmp_path / "mixed")
    write_dicom_series(small, tmp_path / "mixed2")
    for f in (tmp_path / "mixed2").iterdir():
        f.rename(tmp_path / "mixed" / f"small_{f.name}")
    with pytest.warns(UserWarning, match="2 DICOM series"):
        back = read_dicom_series(tmp_path / "mixed")
    assert back.shape == ct.shape


# --------------------------------------------------------------------------- segmentations

def test_layers_are_packed_greedily(ct, overlapping):
    layers, where = pack_segments_into_layers(overlapping, ct.shape)
    assert len(layers) == 2 and where == [0, 1, 1]
    assert set(np.unique(layers[1])) == {0, 2, 3}


def test_seg_nrrd_round_trip_with_overlaps(tmp_path, ct, overlapping):
    masks_before = [m.copy() for _, m in overlapping]
    path = write_seg_nrrd(tmp_path / "ear.seg.nrrd", overlapping, ct)
    reference, segments = read_seg_nrrd(path)
    assert_same_geometry(reference, ct, 1e-12)
    assert reference.array.dtype == np.uint8 and not reference.array.any()
    assert [s for s, _ in segments] == [s for s, _ in overlapping]          # names, colours, values
    for (_, got), (_, want) in zip(segments, overlapping):
        assert got.dtype == np.bool_ and np.array_equal(got, want)
    for (_, m), before in zip(overlapping, masks_before):
        assert np.array_equal(m, before)


def test_seg_nrrd_header_has_what_slicer_needs(tmp_path, ct, overlapping):
    path = write_seg_nrrd(tmp_path / "ear.seg.nrrd", overlapping, ct)
    data, header = nrrd.read(str(path))
    assert header["dimension"] == 4 and data.shape == (2,) + ct.size
    assert header["kinds"] == ["list", "domain", "domain", "domain"]
    assert header["space"] == "left-posterior-superior"
    assert np.all(np.isnan(header["space directions"][0]))
    np.testing.assert_allclose(header["space directions"][1:], (ct.direction @ np.diag(ct.spacing)).T, atol=1e-12)
    np.testing.assert_allclose(header["space origin"], ct.origin, atol=1e-12)
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert header["Segmentation_ContainedRepresentationNames"].startswith("Binary labelmap|")
    assert header["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    assert "Reference image geometry|" in header["Segmentation_ConversionParameters"]
    for n, (seg, mask) in enumerate(overlapping):
        for key in ("ID", "Name", "Color", "LabelValue", "Layer", "Extent", "Tags"):
            assert f"Segment{n}_{key}" in header
        assert header[f"Segment{n}_ID"] == segment_id_from_name(seg.name)
        assert header[f"Segment{n}_Name"] == seg.name
        np.testing.assert_allclose([float(v) for v in header[f"Segment{n}_Color"].split()], seg.color)
        k, j, i = np.nonzero(mask)
        assert header[f"Segment{n}_Extent"] == f"{i.min()} {i.max()} {j.min()} {j.max()} {k.min()} {k.max()}"
        layer = int(header[f"Segment{n}_Layer"])
        value = int(header[f"Segment{n}_LabelValue"])
        assert np.array_equal(data[layer].transpose(2, 1, 0) == value, mask)   # (x,y,z) -> (z,y,x)


def test_disjoint_segments_make_a_3d_file_and_empty_segments_survive(tmp_path, ct):
    a = np.zeros(ct.shape, bool)
    a[0:2, 0:3, 0:4] = True
    b = np.zeros(ct.shape, bool)
    b[4:6, 5:8, 6:10] = True
    empty = np.zeros(ct.shape, bool)
    segments = [(Segment(1, "A", (1, 0, 0)), a), (Segment(2, "B b", (0, 1, 0)), b),
                (Segment(3, "Nothing", (0, 0, 1)), empty)]
    path = write_seg_nrrd(tmp_path / "two.seg.nrrd", segments, ct)
    header = nrrd.read_header(str(path))
    assert header["dimension"] == 3 and header["Segment2_Extent"] == "0 -1 0 -1 0 -1"
    assert header["Segment1_ID"] == "B_b"
    _, back = read_seg_nrrd(path)
    assert [s.name for s, _ in back] == ["A", "B b", "Nothing"]
    assert np.array_equal(back[0][1], a) and np.array_equal(back[1][1], b) and not back[2][1].any()


def test_plain_labelmap_nrrd_reads_as_segments(tmp_path, ct):
    labels = np.zeros(ct.shape, np.uint8)
    labels[1:3, 1:3, 1:3] = 4
    labels[4, 4, 4] = 7
    write_volume(ct.copy(labels), tmp_path / "labels.nrrd")
    reference, segments = read_seg_nrrd(tmp_path / "labels.nrrd")
    assert [(s.value, s.name) for s, _ in segments] == [(4, "Segment_4"), (7, "Segment_7")]
    assert segments[0][1].sum() == 8 and segments[1][1].sum() == 1
    assert_same_geometry(reference, ct, 1e-12)


def _box(shape, z, y, x) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[z, y, x] = True
    return mask


def test_seg_nrrd_known_header_and_round_trip(tmp_path):
    """A grid whose steps are axis permutations, so every header number is known by hand."""
    import slicerio

    # columns: the i, j, k unit steps in LPS (i -> -S, j -> +L, k -> -P)
    direction = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])
    grid = Volume(np.zeros((3, 4, 5), np.int16), spacing=(0.5, 0.25, 2.0), origin=(1.0, 2.0, 3.0),
                  direction=direction)
    shape = grid.shape
    otic = Segment(9, "Otic capsule", (0.1, 0.2, 0.3))
    segments = [(COCHLEA, _box(shape, slice(0, 2), slice(0, 2), slice(0, 3))),
                (SCALA_TYMPANI, _box(shape, 1, 1, slice(1, 3))),         # inside the cochlea
                (otic, _box(shape, 2, 3, 4)),                            # apart from everything
                (SCALA_VESTIBULI, _box(shape, 0, 0, 0))]                 # in the cochlea, not the tympani
    path = write_seg_nrrd(tmp_path / "known.seg.nrrd", segments, grid, side="left")

    data, header = nrrd.read(str(path))
    assert header["sizes"].tolist() == [2, 5, 4, 3] and header["type"] == "uint8"
    assert header["kinds"] == ["list", "domain", "domain", "domain"]
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_array_equal(header["space directions"][1:],
                                  [[0.0, 0.0, -0.5], [0.25, 0.0, 0.0], [0.0, -2.0, 0.0]])
    np.testing.assert_array_equal(header["space origin"], [1.0, 2.0, 3.0])
    assert header["Segmentation_ConversionParameters"] == (
        "Reference image geometry|0;-0.25;0;-1.0;0;0;2.0;-2.0;-0.5;0;0;3.0;0;0;0;1.0;0;4;0;3;0;2;"
        "|Geometry (IJK-to-RAS matrix and extent) of the labelmaps made by conversion.&")
    assert header["Segmentation_ContainedRepresentationNames"] == "Binary labelmap|Closed surface|"
    expected = [("Cochlea", "Cochlea", "1", "0", "0 2 0 1 0 1"),
                ("Scala_tympani", "Scala tympani", "2", "1", "1 2 1 1 1 1"),
                ("Otic_capsule", "Otic capsule", "9", "0", "4 4 3 3 2 2"),
                ("Scala_vestibuli", "Scala vestibuli", "3", "1", "0 0 0 0 0 0")]
    for n, (seg_id, name, value, layer, extent) in enumerate(expected):
        fields = [header[f"Segment{n}_{k}"] for k in ("ID", "Name", "LabelValue", "Layer", "Extent")]
        assert fields == [seg_id, name, value, layer, extent]
    assert header["Segment2_Color"] == "0.1 0.2 0.3"
    assert data[0, 4, 3, 2] == 9 and data[1, 0, 0, 0] == 3 and data[0, 0, 0, 0] == 1
    assert header["Segment0_Tags"] == ("CochleaAI.LabelValue:1|Segmentation.Status:completed|"
                                       f"TerminologyEntry:{terminology_entry('Cochlea', 'left')}|")
    assert header["Segment2_Tags"] == "CochleaAI.LabelValue:9|Segmentation.Status:completed|"

    # slicerio sees the standard codes (the side as the cochlea's type modifier)
    records = slicerio.read_segmentation(str(path), skip_voxels=True)["segments"]
    codes = [s.get("terminology") for s in records]
    assert codes[0]["type"] == ["SCT", "80169004", "Cochlear structure"]
    assert codes[0]["typeModifier"] == ["SCT", "7771000", "Left"]
    assert codes[1]["type"] == ["CochleaAI", "scala-tympani", "Scala tympani"]
    assert "typeModifier" not in codes[1]
    assert codes[2] is None and codes[3]["type"] == ["SCT", "4394008", "Scala vestibuli structure"]

    reference, back = read_seg_nrrd(path)
    assert reference.shape == (3, 4, 5)
    np.testing.assert_array_equal(reference.spacing, [0.5, 0.25, 2.0])
    np.testing.assert_array_equal(reference.origin, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(reference.direction, direction)
    assert [s for s, _ in back] == [COCHLEA, SCALA_TYMPANI, otic, SCALA_VESTIBULI]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(back, segments))

    detached = write_seg_nrrd(tmp_path / "known.seg.nhdr", segments, grid, compress=False)
    assert (tmp_path / "known.seg.raw").stat().st_size == 2 * 5 * 4 * 3      # uint8 layers, no gzip
    _, again = read_seg_nrrd(detached)
    assert [s for s, _ in again] == [s for s, _ in back]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(again, segments))


def test_seg_nrrd_of_the_hand_written_writer_still_reads_the_same(tmp_path):
    """``data/hand_written_writer.seg.nrrd`` was written by the NRRD writer io had before slicerio,
    from the segments below; reading it, and writing them again, give the same answers."""
    fixture = ROOT / "Testing" / "data" / "hand_written_writer.seg.nrrd"
    grid = Volume(np.zeros((4, 5, 6), np.int16), spacing=(0.31, 0.47, 0.83), origin=(12.5, -40.25, 7.125),
                  direction=OBLIQUE)
    shape = grid.shape
    window = Segment(7, "Round window: niche\n(left)", (1.2, -0.1, 0.5))
    segments = [(COCHLEA, _box(shape, slice(0, 3), slice(1, 4), slice(1, 5))),
                (SCALA_TYMPANI, _box(shape, slice(1, 2), slice(2, 3), slice(2, 4))),
                (window, _box(shape, 3, 4, 5)),
                (Segment(3, "Nothing", (0.0, 0.0, 1.0)), np.zeros(shape, bool))]

    reference, back = read_seg_nrrd(fixture)
    assert_same_geometry(reference, grid, 1e-12)
    assert [s for s, _ in back] == [COCHLEA, SCALA_TYMPANI,                    # name cleaned, colour clamped
                                    Segment(7, "Round window: niche (left)", (1.0, 0.0, 0.5)),
                                    Segment(3, "Nothing", (0.0, 0.0, 1.0))]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(back, segments))

    old_data, old = nrrd.read(str(fixture))
    new_data, new = nrrd.read(str(write_seg_nrrd(tmp_path / "again.seg.nrrd", segments, grid)))
    assert np.array_equal(new_data, old_data) and new_data.dtype == old_data.dtype
    np.testing.assert_array_equal(new["space directions"], old["space directions"])
    np.testing.assert_array_equal(new["space origin"], old["space origin"])
    assert set(new) == set(old)
    for key in set(old) - {"space directions", "space origin", "sizes"}:
        if key.endswith("_Color"):                    # "0" was written "0.0": the same numbers
            assert [float(v) for v in new[key].split()] == [float(v) for v in old[key].split()]
        elif key in ("Segment0_Tags", "Segment1_Tags"):                   # now with their terminology
            assert new[key].startswith(old[key]) and "|TerminologyEntry:" in new[key]
        else:
            assert new[key] == old[key], key


def test_seg_nrrd_damaged_or_inconsistent_files_are_refused_clearly(tmp_path, ct, overlapping):
    path = write_seg_nrrd(tmp_path / "ear.seg.nrrd", overlapping, ct)
    whole = path.read_bytes()
    (tmp_path / "cut.seg.nrrd").write_bytes(whole[:len(whole) - 40])        # gzip data cut short
    with pytest.raises(CochleaAIError, match="'cut.seg.nrrd'.*damaged"):
        read_seg_nrrd(tmp_path / "cut.seg.nrrd")
    with pytest.raises(CochleaAIError, match="folder"):
        read_seg_nrrd(tmp_path)
    data, header = nrrd.read(str(path))
    header["Segment1_Layer"] = "5"
    nrrd.write(str(tmp_path / "layer.seg.nrrd"), data, header)
    with pytest.raises(CochleaAIError, match="layer 5.*has 2; the file is inconsistent"):
        read_seg_nrrd(tmp_path / "layer.seg.nrrd")
    header["Segment1_Layer"], header["space"] = "1", "left-anterior-superior"
    nrrd.write(str(tmp_path / "las.seg.nrrd"), data, header)
    with pytest.raises(CochleaAIError, match="'las.seg.nrrd'.*space"):
        read_seg_nrrd(tmp_path / "las.seg.nrrd")


def test_seg_nrrd_errors(tmp_path, ct, overlapping):
    with pytest.raises(CochleaAIError, match="does not exist"):
        read_seg_nrrd(tmp_path / "missing.seg.nrrd")
    (tmp_path / "bad.seg.nrrd").write_bytes(b"NRRD0005\ntype: what\n\n\x00")
    with pytest.raises(CochleaAIError, match="damaged"):
        read_seg_nrrd(tmp_path / "bad.seg.nrrd")
    with pytest.raises(CochleaAIError, match="shape"):
        write_seg_nrrd(tmp_path / "x.seg.nrrd", [(COCHLEA, np.zeros((2, 2, 2), bool))], ct)
    with pytest.raises(CochleaAIError, match="label value"):
        write_seg_nrrd(tmp_path / "x.seg.nrrd", [(Segment(0, "Zero", (1, 1, 1)), overlapping[0][1])], ct)
    with pytest.raises(CochleaAIError, match="seg.nrrd"):
        write_seg_nrrd(tmp_path / "x.nii", overlapping, ct)
    path = write_seg_nrrd(tmp_path / "ear.seg.nrrd", overlapping, ct)
    with pytest.raises(CochleaAIError, match="read_seg_nrrd"):
        read_volume(path)


# --------------------------------------------------------------------------- markups

@pytest.fixture
def landmarks() -> Markups:
    return Markups(np.array([[1.5, -2.0, 3.25], [-4.0, 5.5, -6.0], [7.0, 8.0, 9.0]]),
                   ["Round window", "Apex", "Oval window"], "point", "Landmarks",
                   ["entry point", "", "stapes footplate"])


@pytest.mark.parametrize("system", ["LPS", "RAS"])
@pytest.mark.parametrize("kind", ["point", "curve"])
def test_markups_json_round_trip(tmp_path, landmarks, system, kind):
    markups = Markups(landmarks.points, landmarks.labels, kind, landmarks.name, landmarks.descriptions)
    before = markups.points.copy()
    path = write_markups_json(tmp_path / "lm.mrk.json", markups, coordinate_system=system)
    document = json.loads(path.read_text())
    assert document["@schema"] == MARKUPS_SCHEMA
    item = document["markups"][0]
    assert item["type"] == ("Fiducial" if kind == "point" else "Curve")
    assert item["coordinateSystem"] == system and item["coordinateUnits"] == "mm"
    point = item["controlPoints"][0]
    for key in ("id", "label", "position", "orientation", "selected", "locked", "visibility"):
        assert key in point
    assert point["positionStatus"] == "defined"
    expected = markups.points[0] * (np.array([-1.0, -1.0, 1.0]) if system == "RAS" else 1.0)
    np.testing.assert_allclose(point["position"], expected)
    back = read_markups(path)
    np.testing.assert_array_equal(back.points, markups.points)
    assert back.labels == markups.labels and back.kind == kind and back.name == "Landmarks"
    assert back.descriptions == markups.descriptions
    assert np.array_equal(markups.points, before)


def test_fcsv_in_ras_is_read_as_lps(tmp_path):
    text = (
        "# Markups fiducial file version = 4.11\n"
        "# CoordinateSystem = RAS\n"
        "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
        "vtkMRMLMarkupsFiducialNode_0,10.5,-20,30,0,0,0,1,1,1,0,RW,\"round, window\",\n"
        "vtkMRMLMarkupsFiducialNode_1,-1,2,-3,0,0,0,1,1,1,0,Apex,,vtkMRMLScalarVolumeNode1\n")
    (tmp_path / "old.fcsv").write_text(text)
    markups = read_markups(tmp_path / "old.fcsv")
    np.testing.assert_array_equal(markups.points, [[-10.5, 20.0, 30.0], [1.0, -2.0, -3.0]])
    assert markups.labels == ["RW", "Apex"] and markups.kind == "point"
    assert markups.descriptions == ["round, window", ""]
    lps = text.replace("# CoordinateSystem = RAS", "# CoordinateSystem = 1")
    (tmp_path / "lps.fcsv").write_text(lps)
    np.testing.assert_array_equal(read_markups(tmp_path / "lps.fcsv").points[0], [10.5, -20.0, 30.0])


def test_markups_errors(tmp_path, landmarks):
    with pytest.raises(CochleaAIError, match="does not exist"):
        read_markups(tmp_path / "none.mrk.json")
    (tmp_path / "broken.mrk.json").write_text("{ not json")
    with pytest.raises(CochleaAIError, match="JSON"):
        read_markups(tmp_path / "broken.mrk.json")
    (tmp_path / "nolist.mrk.json").write_text(json.dumps({"@schema": MARKUPS_SCHEMA}))
    with pytest.raises(CochleaAIError, match="markups"):
        read_markups(tmp_path / "nolist.mrk.json")
    bad_point = {"markups": [{"type": "Fiducial", "controlPoints": [{"position": [1, "x"]}]}]}
    (tmp_path / "badpoint.mrk.json").write_text(json.dumps(bad_point))
    with pytest.raises(CochleaAIError, match="invalid position"):
        read_markups(tmp_path / "badpoint.mrk.json")
    (tmp_path / "bad.fcsv").write_text("# CoordinateSystem = LPS\nid,1,two,3\n")
    with pytest.raises(CochleaAIError, match="malformed"):
        read_markups(tmp_path / "bad.fcsv")
    (tmp_path / "p.txt").write_text("1 2 3")
    with pytest.raises(CochleaAIError, match="Unknown markups"):
        read_markups(tmp_path / "p.txt")
    with pytest.raises(CochleaAIError, match="LPS"):
        write_markups_json(tmp_path / "x.mrk.json", landmarks, coordinate_system="XYZ")
    with pytest.raises(CochleaAIError, match=r"\(N, 3\)"):
        Markups(np.zeros((2, 2)))
    with pytest.raises(CochleaAIError, match="labels"):
        Markups(np.zeros((2, 3)), ["only one"])
    with pytest.raises(CochleaAIError, match="kind"):
        Markups(np.zeros((1, 3)), kind="plane")


def test_markups_default_labels_and_lookup():
    markups = Markups([[1, 2, 3], [4, 5, 6]], name="E")
    assert markups.labels == ["E-1", "E-2"]
    np.testing.assert_array_equal(markups.point("E-2"), [4, 5, 6])
    with pytest.raises(CochleaAIError, match="No point"):
        markups.point("missing")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(Markups(np.zeros((0, 3)))) == 0


@pytest.mark.filterwarnings("ignore:'Dataset.is_:DeprecationWarning")   # pydicom 3 playing 2.4
def test_dicom_files_are_written_with_pydicom_2_keywords_too(tmp_path, ct, monkeypatch):
    """Slicer 5.8 ships pydicom 2.4, whose save_as knows write_like_original, not
    enforce_file_format (checked here with a stand-in save_as; a run of this file with a real
    pydicom 2.4.4 on the path passes the round trips above)."""
    from pydicom.dataset import Dataset

    calls = []
    monkeypatch.setattr(pydicom, "__version__", "2.4.4")
    monkeypatch.setattr(Dataset, "save_as", lambda self, path, **kw: calls.append(
        (kw, self.is_little_endian, self.is_implicit_VR)), raising=True)
    files = write_dicom_series(ct, tmp_path / "dcm")
    assert calls == [({"write_like_original": False}, True, False)] * len(files)


def test_what_slicer_loads_first_needs_none_of_the_packages_it_installs_later():
    """The Slicer panels import these modules before torch and the other packages of
    Resources/Dependencies/requirements.txt (and tqdm, threadpoolctl, matplotlib) are there:
    hoisting an import to the top of a file must not make them need one."""
    missing = ("torch", "numba", "skimage", "nrrd", "slicerio", "matplotlib", "tqdm", "threadpoolctl")
    code = ("import sys\n"
            f"for name in {missing!r}: sys.modules[name] = None\n"
            "import cochleaai, cochleaai.io, cochleaai.volume, cochleaai.markups, cochleaai.progress\n"
            "import cochleaai.threads, cochleaai.slicer.mrml\n"
            "print('loaded')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr
