"""Figures: matplotlib without a display, saved as PNG."""
from __future__ import annotations

from pathlib import Path

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
