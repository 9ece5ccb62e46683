"""How close simulated post-operative CT is to a real scan, away from the metal and near it.

For every real development specimen (``--data``), the cochlea region is cropped to the
training grid and one electrode array is inserted along its expert-posed cochlea model. One
simulation gives three images beside the real pre-op:

* ``clean``: the simulated scanner's image of the anatomy without the implant;
* ``simulated``: the simulated scanner's image with the implant (the older training input);
* ``injected``: the real pre-op plus the artifact, ``simulated - clean`` (the default of
  ``simulate-ci``).

Away from the metal (more than 5 mm) each image's fine noise (:func:`cochleaai.metrics.fine_noise_sd`),
edge sharpness (:func:`cochleaai.metrics.edge_sharpness`), both in tissue and bone, and RMS
difference from the real pre-op are reported, as medians over the specimens and as ratios to the pre-op's. Near the
metal (within 3 mm) the artifact of both inputs is compared with its own metal-free image:
injection must keep it as strong as the simulation makes it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io import axial_panels
from cochleaai.metrics import distance_from_mask, edge_sharpness, fine_noise_sd, rmse
from cochleaai.progress import Progress
from cochleaai.realct import find_specimens
from cochleaai.simulation.ct import ScanConfig, inject_artifact, simulate_postop
from cochleaai.simulation.pairs import real_preop
from cochleaai.simulation.projector import FanBeamGeometry

NAME = "pair-realism"
DESCRIPTION = ("simulated vs artifact-injected post-op CT against the real pre-op (needs --data): "
               "noise, sharpness and RMS away from the metal, artifact strength near it")
#: Where the development copy of ``--data`` lies, from the project root
DATA = "../shared/data/real-ct"
OPTIONS = [("--data", {"help": f"a folder of real pre-op CTs (layout of cochleaai.realct; from the project "
                               f"root: {DATA})"})]
ARRAY = "flex28"
DEPTH_DEG = 450.0
#: Distances (mm) from the metal: near, and far enough that no artifact is expected
NEAR_MM, FAR_MM = 3.0, 5.0
#: Voxels above this (HU) in the pre-op are tissue or bone, where noise and sharpness are measured
TISSUE_HU = -900.0
#: --tiny: a coarse scanner, one specimen
TINY_CONFIG = ScanConfig(n_bins=5, geometry=FanBeamGeometry(n_views=180), channel_subrays=1, z_subrays=1)
IMAGES = ("preop", "clean", "simulated", "injected")


def measure_case(preop, theta, seed: int, config: ScanConfig, picture=None) -> dict:
    """The figures of one specimen: per image (far from the metal) noise, sharpness and RMS
    from the pre-op; near the metal, each input's RMS from its own metal-free image.
    ``picture``: a PNG path for the four images' axial slice through the most metal."""
    # one simulation gives both post-ops: the simulated scan, and the pre-op plus its artifact
    sim = simulate_postop(preop, theta, ARRAY, DEPTH_DEG, seed=seed, config=config, artifact_mode="simulated")
    injected = inject_artifact(preop, sim.artifact)
    images = {"preop": preop, "clean": sim.clean, "simulated": sim.postop, "injected": injected}
    distance = distance_from_mask(sim.metal.array.astype(bool), preop.spacing)
    far, near = distance > FAR_MM, (distance <= NEAR_MM) & (distance > 0)
    # texture lives in tissue and bone: the air of these specimens is clipped flat at -1000 HU
    tissue = far & (np.asarray(preop.array) > TISSUE_HU)
    if not tissue.any() or not near.any():
        raise CochleaAIError("The crop leaves no tissue far from the metal, or nothing near it.")
    if picture is not None:
        axial_panels({name: image.array for name, image in images.items()}, sim.metal.array, picture)
    out = {"far_tissue_voxels": float(tissue.sum())}
    for name, image in images.items():
        out[f"noise_sd_far_{name}"] = fine_noise_sd(image.array, tissue)
        out[f"sharpness_far_{name}"] = edge_sharpness(image, mask=tissue)
        if name != "preop":
            out[f"rms_vs_preop_far_{name}"] = rmse(preop.array, image.array, far)
    out["artifact_rms_near_simulated"] = rmse(sim.clean.array, sim.postop.array, near)
    out["artifact_rms_near_injected"] = rmse(preop.array, injected.array, near)
    return out


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, data=None, tiny: bool = False) -> dict:
    if not data:
        raise CochleaAIError(f"pair-realism needs --data DIR of real pre-op CTs (from the project root: {DATA}).")
    specimens = find_specimens(data)
    if not specimens:
        raise CochleaAIError(f"{data} holds no specimens in the layout of cochleaai.realct.")
    specimens = specimens[:1 if tiny else 3 if quick else None]
    config = TINY_CONFIG if tiny else ScanConfig()
    p = Progress.wrap(progress)
    t0 = time.perf_counter()
    cases = {}
    for k, spec in enumerate(specimens):
        p(k / len(specimens), f"specimen {spec.id} ({k + 1}/{len(specimens)})")
        preop, theta, _ = real_preop(spec.folder, jitter_mm=0.0)
        picture = Path(out_dir) / f"pair-realism-{spec.id}.png" if out_dir else None
        cases[spec.id] = measure_case(preop, theta, seed + k, config, picture)
    p(1.0, "done")
    keys = list(next(iter(cases.values())))
    median = {key: float(np.median([c[key] for c in cases.values()])) for key in keys}
    figures = {"specimens": ",".join(cases)}
    for what in ("noise_sd_far", "sharpness_far"):
        figures[what] = {name: median[f"{what}_{name}"] for name in IMAGES}
        figures[f"{what}_ratio_to_preop"] = {name: median[f"{what}_{name}"] / median[f"{what}_preop"]
                                             for name in IMAGES[1:]}
    figures["rms_vs_preop_far_hu"] = {name: median[f"rms_vs_preop_far_{name}"] for name in IMAGES[1:]}
    figures["artifact_rms_near_hu"] = {name: median[f"artifact_rms_near_{name}"] for name in ("simulated", "injected")}
    figures["per_specimen"] = [{"specimen": sid, **{k: round(v, 2) for k, v in c.items()
                                                     if k.startswith(("noise", "sharp", "rms_vs_preop_far_inj"))}}
                               for sid, c in cases.items()]
    figures.update({"array": ARRAY, "depth_deg": DEPTH_DEG, "far_mm": FAR_MM, "near_mm": NEAR_MM,
                    "median_over": "specimens", "seconds": time.perf_counter() - t0})
    return figures
