"""Reading the structure mask of a reference or validation image from a file."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from cochleaai import io
from cochleaai.landmarks.inputs import choose_segment
from cochleaai.volume import Volume


def read_structure_mask(path, image: Volume, segment: Optional[str] = "Cochlea") -> np.ndarray:
    """A bool mask on ``image``'s grid from a ``.seg.nrrd`` (the named segment, or the only
    one) or a label volume (non-zero voxels)."""
    name = Path(path).name.lower()
    if name.endswith((".seg.nrrd", ".seg.nhdr")) or name.endswith(".nrrd"):
        reference, segments = io.read_seg_nrrd(path)
        chosen = choose_segment(segments, segment, f"'{Path(path).name}'", "Pass --segment NAME.")
        mask = reference.copy(chosen.astype(np.uint8))
    else:
        mask = io.read_volume(path)
    if not mask.same_geometry(image):
        mask = mask.resample_like(image, "nearest")
    return np.asarray(mask.array) != 0
