"""Figures: matplotlib without a display, saved as PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cochleaai.io.outputs import written_whole


def pyplot():
    """matplotlib.pyplot drawing off-screen (no display is needed for the figures written)."""
    import matplotlib  # lazy: only the figures need it; Slicer lacks it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: only the figures need it; Slicer lacks it

    return plt


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Write a matplotlib figure as an image (folders made as needed) and close it."""
    import matplotlib.pyplot as plt  # lazy: only the figures need it; Slicer lacks it

    path = Path(path)
    with written_whole(path) as partial:
        fig.savefig(partial, dpi=dpi)
    plt.close(fig)
    return path


def axial_panels(panels, mask, path, title: str = "", window=(-1000, 3000)) -> Path:
    """Side by side, the axial slice through the most voxels of ``mask`` (z, y, x) of each of
    ``panels`` (``{name: array}``, HU), in one grey window; written to ``path``."""
    k = int(np.argmax(np.asarray(mask).reshape(np.shape(mask)[0], -1).sum(1)))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.4 if title else 4))
    for ax, (name, image) in zip(np.atleast_1d(axes), panels.items()):
        ax.imshow(np.asarray(image)[k], cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
        ax.set_title(f"{name} (axial slice {k})")
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)

