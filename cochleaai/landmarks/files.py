"""Reading the structure mask of a reference or validation image from a file."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import CochleaAIError
from ..volume import Volume


def read_structure_mask(path, image: Volume, segment: Optional[str] = "Cochlea") -> np.ndarray:
    """A bool mask on ``image``'s grid from a ``.seg.nrrd`` (the named segment, or the only
    one) or a label volume (non-zero voxels)."""
    from .. import io

    name = Path(path).name.lower()
    if name.endswith((".seg.nrrd", ".seg.nhdr")) or name.endswith(".nrrd"):
        reference, segments = io.read_seg_nrrd(path)
        if not segments:
            raise CochleaAIError(f"'{Path(path).name}' holds no segment; segment the structure first.")
        chosen = None
        if segment:
            chosen = next((m for s, m in segments if s.name.lower() == segment.lower()), None)
        if chosen is None:
            if not segment and len(segments) == 1:      # no name given: the only segment
                chosen = segments[0][1]
            else:
                raise CochleaAIError(
                    f"'{Path(path).name}' has no segment named {segment!r}; its segments are "
                    f"{', '.join(s.name for s, _ in segments)}. Pass --segment NAME.")
        mask = reference.copy(chosen.astype(np.uint8))
    else:
        mask = io.read_volume(path)
    if not mask.same_geometry(image):
        mask = mask.resample_like(image, "nearest")
    return np.asarray(mask.array) != 0
