"""The main job on the built-in phantom: ``python -m cochleaai demo`` (and ``make demo``).

Generates a synthetic temporal-bone CT with its ground truth, loads it into a real MRML
scene (CT volume, segmentation with named segments, landmark point list, the true shape
surface as a model, the scala tympani centreline as a curve labelled in degrees, a table
of the true shape parameters and measures), saves the scene and a PNG of three
orthogonal slices with the label contours, and prints a summary. Each method's step
(:mod:`.segmentation`, :mod:`.mar`, :mod:`.landmarks`, :mod:`.vae`) adds its own result to
the same scene before it is saved.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cochleaai.io import pyplot, save_figure
from cochleaai.phantom.core import make_phantom
from cochleaai.progress import Progress
from cochleaai.slicer import mrml
from cochleaai.slicer.demo import landmarks, mar, segmentation, vae
from cochleaai.slicer.results.phantom import add_phantom_to_scene

#: The methods' demo steps in order, under their keys in the summary.
STEPS = (("segmentation", segmentation), ("ct", mar), ("landmarks", landmarks), ("vae", vae))
#: The name of the demo's scene file (``scene/<name>.mrml``).
SCENE_NAME = "CochleaAI-demo"


def slice_figure(phantom, path, title: str = "") -> Path:
    """PNG with axial, coronal and sagittal slices through the cochlea and label contours."""
    plt = pyplot()

    ct = phantom.ct
    centre = phantom.model.landmarks()["center"]
    cochlea = phantom.mask("Cochlea")
    if cochlea.any():                      # cut through the middle of the cochlea itself
        k, j, i = np.argwhere(cochlea).mean(0)
    else:
        i, j, k = ct.physical_to_index(centre)
    i, j, k = (int(round(v)) for v in (i, j, k))
    i, j, k = (int(np.clip(v, 0, n - 1)) for v, n in zip((i, j, k), ct.size))
    sp = ct.spacing
    # radiological display for an identity direction: axial with anterior up and the
    # patient's right on the left; coronal and sagittal with superior up
    views = [("axial (k=%d)" % k, lambda a: a[k], (sp[0], sp[1]), "upper"),
             ("coronal (j=%d)" % j, lambda a: a[:, j], (sp[0], sp[2]), "lower"),
             ("sagittal (i=%d)" % i, lambda a: a[:, :, i], (sp[1], sp[2]), "lower")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4))
    for ax, (name, cut, (dx, dy), origin) in zip(axes, views):
        img = cut(ct.array).astype(float)
        h = img.shape[0] * dy
        extent = (0, img.shape[1] * dx, h, 0) if origin == "upper" else (0, img.shape[1] * dx, 0, h)
        ax.imshow(img, cmap="gray", vmin=-1000, vmax=2500, extent=extent, origin=origin,
                  interpolation="nearest")
        # the enclosing structures first, so that the cochlea and its scalae stay on top
        for seg, mask in sorted(phantom.segments, key=lambda sm: -int(sm[1].sum())):
            m = cut(mask).astype(float)
            if m.any():
                ax.contour(np.arange(m.shape[1]) * dx + dx / 2, np.arange(m.shape[0]) * dy + dy / 2,
                           m, levels=[0.5], colors=[seg.color], linewidths=1.0)
        ax.set_title(name)
        ax.set_xlabel("mm")
    handles = [plt.Line2D([], [], color=s.color, label=s.name) for s, m in phantom.segments if m.any()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))      # the legend's row stays clear of the axis labels
    return save_figure(fig, path, dpi=110)


def run(out_dir="demo-output", seed: int = 0, fov: str = "temporal", progress=None) -> dict:
    """Run the demo; returns a summary dict (also printed by the CLI)."""
    p = Progress.wrap(progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    phantom = make_phantom(seed=seed, fov=fov, progress=p.stage(0.0, 0.5))
    t_phantom = time.perf_counter() - t0
    files = phantom.save(out / "phantom")

    p(0.55, "loading the phantom into an MRML scene")
    scene = mrml.new_scene()
    nodes = add_phantom_to_scene(scene, phantom, prefix="Phantom")
    model = phantom.model
    mrml.model_from_polydata(scene, model.mesh(edge_mm=0.15), "Cochlea shape (truth)",
                             color=(0.95, 0.75, 0.3))
    mrml.markups_from_points(scene, model.centerline_markups(60))
    measures = {"cochlear duct length (centerline, mm)": model.duct_length(),
                "scala tympani length (mm)": model.duct_length("scala_tympani"),
                "turns": model.turns}
    table = dict(model.as_dict())
    table.update(measures)
    mrml.table_from_dict(scene, {k: float(v) for k, v in table.items()}, "Cochlea shape (truth)")

    steps = {}

    for k, (key, module) in enumerate(STEPS):
        # each method adds its result to the same scene: demo_step(phantom, scene, out_dir,
        # progress) -> summary dict
        stage = p.stage(0.6 + 0.3 * k / len(STEPS), 0.6 + 0.3 * (k + 1) / len(STEPS))
        steps[key] = module.demo_step(phantom, scene, out, stage)

    p(0.92, "saving the scene")
    scene_file = mrml.save_scene(scene, out / "scene", name=SCENE_NAME)
    p(0.95, "drawing the slices")
    png = slice_figure(phantom, out / "phantom_slices.png",
                       title=f"CochleaAI phantom (seed {seed}, {fov} field of view)")
    p(1.0, "done")
    voxels = {seg.name: int(mask.sum()) for seg, mask in phantom.segments}
    return {
        "phantom": {k: str(v) for k, v in files.items()},
        "scene": str(scene_file),
        "png": str(png),
        "ct": repr(phantom.ct),
        "phantom_seconds": round(t_phantom, 2),
        "segment_voxels": voxels,
        "landmarks_lps": {lab: np.round(pt, 2).tolist()
                          for lab, pt in zip(phantom.landmarks.labels, phantom.landmarks.points)},
        "shape": {k: round(v, 4) for k, v in model.as_dict().items()},
        "measures": {k: round(float(v), 3) for k, v in measures.items()},
        "nodes_in_scene": int(scene.GetNumberOfNodes()),
        "mrml_nodes": {k: v.GetName() for k, v in nodes.items()},
        **steps,
    }
