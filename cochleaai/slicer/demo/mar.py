"""Demo step of cochleaai.simulation: simulate an implant in the demo phantom and reduce its artifacts.

The temporal-bone phantom is cropped around the cochlea to MARGAN's grid (60 x 50 x 50 voxels
of 0.2 mm, :func:`~cochleaai.simulation.pairs.crop_around_cochlea`), a FLEX28 array is inserted
to 540 degrees along the true scala tympani, its artifact is simulated and added to the pre-op
(as ``simulate-ci`` does by default), and NMAR (and MARGAN, when its model is installed)
corrects it. The nodes go into the demo scene; ``ct/ct_mar.png`` compares pre-op, post-op, NMAR
and MARGAN.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from cochleaai import io
from cochleaai.contacts.detect import detect_contacts
from cochleaai.io import axial_panels
from cochleaai.mar.dispatch import reduce_metal_artifacts
from cochleaai.mar.methods import default_model_available
from cochleaai.mar.quality import blooming_factor, similarity
from cochleaai.progress import Progress
from cochleaai.simulation.ct import simulate_postop
from cochleaai.simulation.pairs import crop_around_cochlea
from cochleaai.slicer import mrml

ARRAY = "flex28"
DEPTH_DEG = 540.0


def demo_step(phantom, scene, out_dir, progress=None) -> dict:
    p = Progress.wrap(progress)
    out = Path(out_dir) / "ct"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    p(0.0, "cropping the cochlea region")
    pre = crop_around_cochlea(phantom.ct, phantom.model, jitter_mm=0.0)
    p(0.05, "simulating the implant")
    # the pre-op plus the implant's artifact, the post-ops the shipped network was trained on
    sim = simulate_postop(pre, phantom.model, ARRAY, DEPTH_DEG, seed=0, progress=p.stage(0.05, 0.7),
                          artifact_mode="injected")
    p(0.7, "NMAR")
    res = reduce_metal_artifacts(sim.postop, "nmar", progress=p.stage(0.7, 0.9))
    found = detect_contacts(sim.postop, res.metal_mask, max_contacts=sim.insertion.array.n_contacts)

    margan = reduce_metal_artifacts(sim.postop, "margan") if default_model_available() else None
    p(0.9, "adding nodes and writing files")
    nodes = {"preop": mrml.volume_to_node(scene, pre, "CI pre-op ROI"),
             "postop": mrml.volume_to_node(scene, sim.postop, "CI post-op (pre-op + simulated artifact)"),
             "nmar": mrml.volume_to_node(scene, res.image.rounded_int16(), "CI post-op NMAR")}
    mrml.segmentation_from_masks(scene, sim.metal_segments(), sim.metal, "CI metal (truth)",
                                 reference_volume_node=nodes["postop"])
    truth = sim.contacts_markups()
    truth.name = "CI contacts (truth)"
    mrml.markups_from_points(scene, truth)
    found.name = "CI contacts (found)"
    mrml.markups_from_points(scene, found)
    io.write_volume(sim.postop, out / "postop.nrrd")
    io.write_volume(res.image, out / "postop_nmar.nrrd")
    io.write_markups_json(out / "contacts_truth.mrk.json", truth)
    io.write_markups_json(out / "contacts_found.mrk.json", found)
    metal = sim.metal.array.astype(bool)
    panels = {"pre-op": pre.array, "post-op": sim.postop.array, "NMAR": res.image.array}
    if margan is not None:
        panels["MARGAN"] = margan.image.array
    png = axial_panels(panels, metal, out / "ct_mar.png",
                       f"{sim.insertion.array.name} at {DEPTH_DEG:.0f} deg: pre-op, post-op (pre-op + artifact), "
                       + ", ".join(list(panels)[2:]))
    inside = sim.insertion.contacts[sim.insertion.intracochlear & pre.contains(sim.insertion.contacts)]
    err = cKDTree(found.points).query(inside)[0] if len(found) and len(inside) else np.array([np.nan])
    before = similarity(pre.array, sim.postop.array, metal)
    after = similarity(pre.array, res.image.array, metal)
    p(1.0, "done")
    return {"roi": repr(pre), "array": ARRAY, "depth_deg": DEPTH_DEG,
            "scatter_to_primary": round(sim.scatter_to_primary, 4),
            "simulation_seconds": round(sim.seconds["total"], 2),
            "blooming_factor": round(blooming_factor(sim.postop, sim.insertion), 2),
            "rmse_hu_postop_vs_preop": round(before["rmse"], 1), "rmse_hu_nmar_vs_preop": round(after["rmse"], 1),
            "rmse_hu_margan_vs_preop": (round(similarity(pre.array, margan.image.array, metal)["rmse"], 1)
                                        if margan is not None else None),
            "contacts_found": len(found), "contact_error_mm_median": round(float(np.median(err)), 3),
            "png": str(png), "seconds": round(time.perf_counter() - t0, 2)}
