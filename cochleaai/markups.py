"""Points with names in physical millimetres (LPS): the core type of landmarks, contacts and
centrelines. Reading and writing Slicer's markups files is :mod:`cochleaai.io.markups_files`'s job."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from cochleaai.errors import CochleaAIError

#: The kinds of point lists, with Slicer's markups type of each.
KIND_TO_TYPE = {"point": "Fiducial", "curve": "Curve"}


@dataclass
class Markups:
    """A named list of points in **LPS** millimetres, as a point list or an open curve.

    ``points``: ``(N, 3)``; ``labels``: one per point (default ``"<name>-<n>"``);
    ``kind``: ``"point"`` (Slicer point list) or ``"curve"``; ``descriptions``: optional,
    one per point.
    """

    points: np.ndarray
    labels: Optional[List[str]] = None
    kind: str = "point"
    name: str = "Points"
    descriptions: Optional[List[str]] = None

    def __post_init__(self):
        pts = np.array(self.points, dtype=float, copy=True)
        if pts.size == 0:
            pts = pts.reshape(0, 3)
        if pts.ndim == 1 and pts.size == 3:
            pts = pts.reshape(1, 3)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise CochleaAIError(f"Markup points must be an (N, 3) array, got shape {pts.shape}.")
        if not np.all(np.isfinite(pts)):
            raise CochleaAIError("Markup points contain NaN or infinite coordinates.")
        self.points = pts
        self.name = str(self.name)
        if self.kind not in KIND_TO_TYPE:
            raise CochleaAIError(f"Markups kind must be 'point' or 'curve', got {self.kind!r}.")
        if self.labels is None:
            self.labels = [f"{self.name}-{i + 1}" for i in range(len(pts))]
        self.labels = [str(v) for v in self.labels]
        if len(self.labels) != len(pts):
            raise CochleaAIError(f"{len(self.labels)} labels for {len(pts)} points; give one label per point.")
        if self.descriptions is not None:
            self.descriptions = [str(v) for v in self.descriptions]
            if len(self.descriptions) != len(pts):
                raise CochleaAIError(f"{len(self.descriptions)} descriptions for {len(pts)} points.")

    def __len__(self) -> int:
        return len(self.points)

    def point(self, label: str) -> np.ndarray:
        """The LPS position of the point called ``label``."""
        try:
            return self.points[self.labels.index(label)].copy()
        except ValueError:
            raise CochleaAIError(f"No point labelled '{label}' in '{self.name}'; "
                                 f"labels are {self.labels}.") from None

    def as_dict(self) -> Dict[str, np.ndarray]:
        return {label: p.copy() for label, p in zip(self.labels, self.points)}
