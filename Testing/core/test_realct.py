"""The real-CT data set reader and the cochlear-part scoring (cochleaai.realct).

Analytic cases on a small synthetic specimen written in the data set's layout, and, where
the development data is present, the cochlear-part volumes its README states.
"""
import json

import numpy as np
import pytest

from cochleaai import io, realct
from cochleaai.errors import CochleaAIError
from cochleaai.volume import Volume, lps_to_ras
from conftest import real_specimen, requires_real_ct


def _write_specimen(folder, side="RIGHT", shift_labels_mm=0.0):
    """A 20 mm cube at 0.25 mm; the label is a slab 4 mm thick around the modiolar axis (+z)
    through the origin, from z = -2 to z = +6 mm; landmarks in RAS as the data set has them."""
    folder.mkdir(parents=True, exist_ok=True)
    n, sp = 80, 0.25
    vol = Volume(np.zeros((n, n, n), np.int16), sp, origin=(-10, -10, -10))
    xyz = vol.physical_grid()
    label = (np.abs(xyz[..., 0] - shift_labels_mm) < 2) & (np.abs(xyz[..., 1]) < 7) & \
        (xyz[..., 2] > -2) & (xyz[..., 2] < 6)
    ct = np.where(label, 0, 2000).astype(np.int16)
    io.write_volume(vol.copy(ct), folder / "X01_CT_RAW.nii.gz")
    io.write_volume(vol.copy(label.astype(np.uint8)), folder / "X01_CT_LABELS.nii.gz")
    lps = {"C": [0, 0, 0], "A": [0, 0, 4], "RW": [3, 0, -1], "OW": [4, 0, 0], "V": [5, 0, 0]}
    desc = {"ID": "X01", "SIDE": side,
            "LANDMARKS": {k: lps_to_ras(v).tolist() for k, v in lps.items()},
            "COORD": {"ORIGIN": lps_to_ras([0, 0, 0]).tolist(), "XAXIS": lps_to_ras([1, 0, 0]).tolist(),
                      "YAXIS": lps_to_ras([0, 1, 0]).tolist(), "ZAXIS": [0, 0, 1]}}
    (folder / "X01_DESC.json").write_text(json.dumps(desc))
    return folder


def test_specimen_landmarks_are_read_as_ras_and_kept_in_lps(tmp_path):
    s = realct.read_specimen(_write_specimen(tmp_path / "X01"))
    assert s.id == "X01" and s.side == "right"
    np.testing.assert_allclose(s.landmarks["round window"], [3, 0, -1])
    np.testing.assert_allclose(s.landmarks["apex"], [0, 0, 4])
    np.testing.assert_allclose(s.axes, np.eye(3), atol=1e-12)
    assert [x.id for x in realct.find_specimens(tmp_path)] == ["X01"]


def test_cochlear_part_is_the_label_inside_the_cylinder(tmp_path):
    s = realct.read_specimen(_write_specimen(tmp_path / "X01"))
    labels = s.labels()
    part = realct.cochlear_part(labels, s)
    xyz = labels.physical_grid()
    r = np.hypot(xyz[..., 0], xyz[..., 1])
    expected = (labels.array > 0) & (r <= realct.RADIUS_MM) & (xyz[..., 2] > -realct.BASE_MM)
    assert np.array_equal(part, expected)
    # the label itself scores perfectly; the part below the cut costs nothing
    score = realct.score_segmentation(labels, labels, s, part)
    assert score["dice"] == pytest.approx(1.0) and score["volume_ratio"] == pytest.approx(1.0)
    assert score["hd95_mm"] == pytest.approx(0.0)


def test_a_shifted_segmentation_scores_the_known_overlap(tmp_path):
    s = realct.read_specimen(_write_specimen(tmp_path / "X01"))
    shifted = realct.read_specimen(_write_specimen(tmp_path / "Y01", shift_labels_mm=1.0)).labels()
    score = realct.score_segmentation(shifted, s.labels(), s)
    # slabs 4 mm wide shifted by 1 mm: 3 mm of 4 overlap, but the cylinder cuts both ends
    assert 0.70 < score["dice"] < 0.80
    assert score["hd95_mm"] == pytest.approx(1.0, abs=0.3)


def test_the_volume_a_cylinder_score_cannot_see(tmp_path):
    s = realct.read_specimen(_write_specimen(tmp_path / "X01"))
    labels = s.labels()
    voxel = float(np.prod(labels.spacing))
    cylinder = realct.scoring_cylinder(labels, s)
    # the label itself: nothing outside the labyrinth; beyond the cylinder, its slab's ends
    own = realct.score_segmentation(labels, labels, s)
    assert own["outside_labyrinth_mm3"] == 0.0
    assert own["outside_cylinder_mm3"] == pytest.approx(((labels.array > 0) & ~cylinder).sum() * voxel)
    assert own["outside_cylinder_mm3"] > 0
    # a 2 mm cube in the bone, beyond the cylinder: all of it outside both
    extra = labels.array.copy()
    extra[:8, :8, :8] = 1
    got = realct.score_segmentation(labels.copy(extra), labels, s)
    assert got["outside_labyrinth_mm3"] == pytest.approx(8.0)          # 8^3 voxels of 0.25 mm
    assert got["outside_cylinder_mm3"] == pytest.approx(own["outside_cylinder_mm3"] + 8.0)


def test_a_bad_description_is_refused(tmp_path):
    folder = _write_specimen(tmp_path / "X01")
    (folder / "X01_DESC.json").write_text('{"ID": "X01", "SIDE": "UP"}')
    with pytest.raises(CochleaAIError, match="not a readable|SIDE"):
        realct.read_specimen(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CochleaAIError, match="No specimen"):
        realct.find_specimens(tmp_path / "empty")


@requires_real_ct
def test_cochlear_part_volumes_match_the_data_readme():
    # the data README's table: T01 80.4 mm3, F03 91.5 mm3
    for sid, mm3 in (("T01", 80.4), ("F03", 91.5)):
        s = real_specimen(sid)
        labels = s.labels()
        volume = realct.cochlear_part(labels, s).sum() * np.prod(labels.spacing)
        assert volume == pytest.approx(mm3, abs=0.15)
