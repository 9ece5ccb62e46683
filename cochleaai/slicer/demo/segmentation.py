"""``make demo`` step: segment the demo phantom's cochlea with the logistic shape model.

The demo phantom is a temporal-bone field of view, so the fit needs to know where the
cochlea is: the phantom's true landmarks (apex, center, round window) stand in for the
points a user clicks. The result is added to the demo scene as the Slicer module shows
it (segmentation, probability and uncertainty maps, fitted surface, centreline, table)
and compared with the phantom's ground truth.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cochleaai.io import pyplot, save_figure
from cochleaai.io.outputs import write_text_whole
from cochleaai.metrics import dice
from cochleaai.progress import Progress
from cochleaai.segmentation.config import COCHLEA_ALONE_DEG, SegmentConfig
from cochleaai.segmentation.pipeline import segment
from cochleaai.segmentation.pose import parse_points
from cochleaai.shape.measures import clinical_measures
from cochleaai.slicer.results.segmentation import add_result_nodes

#: Prefix of the node names, so they stand apart from the phantom's truth nodes.
PREFIX = "Demo"          # "Demo cochlea segmentation", "Demo fitted cochlea shape", ...


def _points_from_landmarks(landmarks) -> dict:
    return parse_points(landmarks.labels, landmarks.points)


def roi_figure(result, truth_on_roi: np.ndarray, path, title: str = "") -> Path:
    """PNG: axial, coronal and sagittal slices of the fitted region through the cochlea, with
    the truth contour and the two fitted contours (shape model and posterior label map)."""
    plt = pyplot()

    roi = result.roi
    inside = np.argwhere(truth_on_roi > 0.5) if (truth_on_roi > 0.5).any() else np.argwhere(result.ssi.array)
    k, j, i = (int(round(v)) for v in (inside.mean(0) if inside.size else np.array(roi.shape) / 2))
    sx, sy, sz = roi.spacing
    # ROI axes are the LPS axes (the pipeline resamples with an identity direction)
    cuts = [(f"axial (k={k})", lambda a: a[k], (sx, sy), ("x: right to left (mm)", "y: anterior to posterior")),
            (f"coronal (j={j})", lambda a: a[:, j], (sx, sz), ("x: right to left (mm)", "z: inferior to superior")),
            (f"sagittal (i={i})", lambda a: a[:, :, i], (sy, sz), ("y: anterior to posterior (mm)",
                                                                   "z: inferior to superior"))]
    # the truth last, dashed, so it stays visible over the fitted contours
    layers = [(result.sroi.array, "#e8574f", "solid", "posterior label map (SROI)"),
              (result.ssi.array, "#4fb3e8", "solid", "shape model (SSI)"),
              (truth_on_roi, "#f5c542", "dashed", "truth")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 5.2))
    for ax, (name, cut, (dx, dy), (xlabel, ylabel)) in zip(axes, cuts):
        img = cut(roi.array).astype(float)
        extent = (0, img.shape[1] * dx, 0, img.shape[0] * dy)
        ax.imshow(img, cmap="gray", vmin=-1000, vmax=2500, origin="lower", extent=extent,
                  interpolation="nearest")
        xs = (np.arange(img.shape[1]) + 0.5) * dx
        ys = (np.arange(img.shape[0]) + 0.5) * dy
        for mask, color, style, _ in layers:
            m = cut(np.asarray(mask, float))
            if m.min() < 0.5 < m.max():
                ax.contour(xs, ys, m, levels=[0.5], colors=[color], linewidths=1.3, linestyles=style)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    handles = [plt.Line2D([], [], color=c, linestyle="--" if s == "dashed" else "-", label=label)
               for _, c, s, label in layers]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 0.94))
    fig.subplots_adjust(bottom=0.2)
    return save_figure(fig, path, dpi=110)


def demo_step(phantom, scene, out_dir, progress=None) -> dict:
    """Segment ``phantom`` from its true landmarks, add the result nodes to ``scene``, write
    ``<out_dir>/segmentation/`` (summary.json, roi_slices.png) and return a summary."""
    p = Progress.wrap(progress)
    points = _points_from_landmarks(phantom.landmarks)
    # labelled like the phantom's truth, the cochlea alone (the default adds the vestibule's wedge
    # that expert labels on real CT hold)
    result = segment(phantom.ct, points, SegmentConfig(side="right", vestibule_wedge_deg=COCHLEA_ALONE_DEG),
                     progress=p.stage(0.0, 0.85))

    p(0.86, "comparing with the phantom truth")
    truth = phantom.mask("Cochlea")
    # on the truth's own grid (0.3 mm): the fitted masks, nearest neighbour, zero outside the ROI
    scores = {}
    for key, mask in (("ssi", result.ssi), ("sroi", result.sroi)):
        on_ct = mask.resample_like(phantom.ct, "nearest", default_value=0).array > 0
        scores[key] = float(dice(on_ct, truth))
    p(0.9, "adding the result to the scene")

    nodes = add_result_nodes(scene, result, PREFIX)

    p(0.95, "drawing the fitted region")
    out = Path(out_dir) / "segmentation"
    out.mkdir(parents=True, exist_ok=True)
    truth_on_roi = phantom.ct.copy(truth.astype(np.float32)).resample_like(result.roi, "linear", default_value=0)
    png = roi_figure(result, truth_on_roi.array, out / "roi_slices.png",
                     title=f"Cochlea fitted from the landmarks: Dice shape model {scores['ssi']:.3f}, "
                           f"label map {scores['sroi']:.3f}")
    true = clinical_measures(phantom.model.theta)
    summary = {
        "nodes": {k: v.GetName() for k, v in nodes.items()},
        "dice_ssi": round(scores["ssi"], 4), "dice_sroi": round(scores["sroi"], 4),
        "measures": {k: {"mean": round(v["mean"], 3), "std": round(v["std"], 3), "truth": round(float(true[k]), 3)}
                     for k, v in result.measures.items()},
        "quality": {k: (bool(v) if isinstance(v, (bool, np.bool_)) else round(float(v), 4))
                    for k, v in result.quality.items()},
        "iterations": int(result.iterations), "seconds": round(result.seconds, 1),
        "png": str(png),
    }
    write_text_whole(out / "summary.json", json.dumps(summary, indent=2))
    p(1.0, "cochlea segmented")
    return summary
