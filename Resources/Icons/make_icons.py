"""Draw the extension and module icons (128 x 128 PNG) with matplotlib.

Run from the repository root:  python Resources/Icons/make_icons.py
It rewrites Resources/Icons/CochleaAI.png and <Module>/Resources/Icons/<Module>.png.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, FancyBboxPatch, Wedge  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SIZE = 128


def _canvas(color):
    """A transparent 128 px figure holding a rounded tile; coordinates run 0..1."""
    fig = plt.figure(figsize=(1, 1), dpi=SIZE)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.06, 0.06), 0.88, 0.88, boxstyle="round,pad=0,rounding_size=0.16",
                                facecolor=color, edgecolor="none"))
    return fig, ax


def _save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=SIZE, transparent=True)
    plt.close(fig)


def _spiral(center=(0.5, 0.5), turns=2.6, r0=0.035, r1=0.33, n=400, phase=0.0):
    """Points of a logarithmic spiral, outer end first (like a cochlea seen from above)."""
    theta = np.linspace(0, 2 * np.pi * turns, n)
    r = r1 * (r0 / r1) ** (theta / theta[-1])
    return (center[0] + r * np.cos(theta + phase), center[1] + r * np.sin(theta + phase), r)


def _tapered(ax, x, y, width0, width1, color, z=3):
    widths = np.linspace(width0, width1, len(x) - 1)
    for i in range(len(x) - 1):
        ax.plot(x[i:i + 2], y[i:i + 2], color=color, lw=widths[i], solid_capstyle="round", zorder=z)


def extension_icon():
    fig, ax = _canvas("#1d5566")
    x, y, _ = _spiral()
    _tapered(ax, x, y, 6.5, 2.0, "#f2c14e")
    for px, py in [(0.78, 0.78), (0.84, 0.66), (0.72, 0.86)]:
        ax.add_patch(Circle((px, py), 0.025, color="#9fd8e6", zorder=4))
    ax.plot([0.78, 0.84, 0.72, 0.78], [0.78, 0.66, 0.86, 0.78], color="#9fd8e6", lw=1, zorder=3)
    return fig


def metal_artifact_icon():
    fig, ax = _canvas("#2b2f3a")
    head = Circle((0.5, 0.5), 0.34, color="#8d929c", zorder=2)
    ax.add_patch(head)
    ax.add_patch(Wedge((0.5, 0.5), 0.34, 90, 270, color="#6f7480", zorder=2))
    source = np.array([0.38, 0.54])
    rng = np.random.default_rng(4)
    for angle in np.linspace(0, np.pi, 9) + 0.2:  # streaks only on the left (uncorrected) half
        d = np.array([np.cos(angle + np.pi / 2), np.sin(angle + np.pi / 2)])
        end = source + d * (0.26 + 0.05 * rng.random())
        end[0] = min(end[0], 0.5)
        streak, = ax.plot([source[0], end[0]], [source[1], end[1]], color="#f6f1e7", lw=1.2,
                          alpha=0.85, zorder=3)
        streak.set_clip_path(head)
    for k in range(4):
        ax.add_patch(Circle((0.36 + 0.018 * k, 0.48 + 0.03 * k), 0.016, color="white", zorder=4))
    x, y, _ = _spiral(center=(0.63, 0.52), turns=2.0, r0=0.02, r1=0.13)
    ax.plot(x, y, color="#f2c14e", lw=2.2, zorder=4, solid_capstyle="round")
    ax.plot([0.5, 0.5], [0.14, 0.86], color="#2b2f3a", lw=1.6, zorder=5)
    return fig


def shape_segmentation_icon():
    fig, ax = _canvas("#20324f")
    x, y, _ = _spiral(turns=2.7, r0=0.03, r1=0.35)
    _tapered(ax, x, y, 13.0, 4.0, "#e35a4d", z=3)
    _tapered(ax, x, y, 3.0, 1.0, "#ffd9a8", z=4)
    ax.plot(x[::40], y[::40], "o", color="white", ms=2.2, zorder=5)
    return fig


def langevin_vae_icon():
    fig, ax = _canvas("#3b2a5c")
    t = np.linspace(0, 2 * np.pi, 200)
    for s in (0.1, 0.19, 0.28, 0.36):
        ax.plot(0.5 + s * np.cos(t) * 1.0, 0.5 + s * np.sin(t) * 0.72, color="#b9a6e3",
                lw=1.1, alpha=0.8, zorder=2)
    path = np.array([[0.18, 0.78], [0.3, 0.68], [0.27, 0.58], [0.4, 0.56], [0.38, 0.47], [0.5, 0.5]])
    ax.plot(path[:, 0], path[:, 1], color="#ffcf5c", lw=2.4, zorder=3, solid_joinstyle="round")
    ax.plot(path[:-1, 0], path[:-1, 1], "o", color="#ffcf5c", ms=3.5, zorder=4)
    ax.add_patch(Circle((0.5, 0.5), 0.035, color="white", zorder=5))
    return fig


def one_shot_landmarks_icon():
    fig, ax = _canvas("#1f5a43")
    x, y, _ = _spiral(center=(0.46, 0.46), turns=2.3, r0=0.03, r1=0.3)
    ax.plot(x, y, color="#7fc8a0", lw=3, alpha=0.7, zorder=2, solid_capstyle="round")
    for px, py in [(x[0], y[0]), (x[150], y[150]), (x[-1], y[-1])]:
        ax.add_patch(Circle((px, py), 0.05, facecolor="none", edgecolor="#ffe27a", lw=1.8, zorder=4))
        ax.plot([px - 0.075, px + 0.075], [py, py], color="#ffe27a", lw=1.0, zorder=4)
        ax.plot([px, px], [py - 0.075, py + 0.075], color="#ffe27a", lw=1.0, zorder=4)
    ax.add_patch(Circle((0.8, 0.8), 0.1, color="#ffe27a", zorder=5))
    ax.text(0.8, 0.795, "1", ha="center", va="center", fontsize=12, fontweight="bold",
            color="#1f5a43", zorder=6)
    return fig


ICONS = {
    ROOT / "Resources" / "Icons" / "CochleaAI.png": extension_icon,
    ROOT / "MetalArtifactReduction" / "Resources" / "Icons" / "MetalArtifactReduction.png": metal_artifact_icon,
    ROOT / "CochleaShapeSegmentation" / "Resources" / "Icons" / "CochleaShapeSegmentation.png": shape_segmentation_icon,
    ROOT / "LangevinVAEExplorer" / "Resources" / "Icons" / "LangevinVAEExplorer.png": langevin_vae_icon,
    ROOT / "OneShotLandmarks" / "Resources" / "Icons" / "OneShotLandmarks.png": one_shot_landmarks_icon,
}


if __name__ == "__main__":
    for target, draw in ICONS.items():
        _save(draw(), target)
        print(target.relative_to(ROOT))
