"""Training pairs for MARGAN: the same anatomy with and without an implant.

Each pair has its own seed, from which everything is drawn: the anatomy (a phantom, or a
jittered crop of a real pre-op CT), the electrode array and its depth, the scanner settings
(:mod:`cochleaai.simulation.scanner_draw`), scatter and noise. By default ("injected") the
*target* is the anatomy itself and the *input* the anatomy plus the artifact, the simulated
scan with the implant minus the same scan without it: the input keeps the real image's own
resolution and noise wherever the metal does not reach, so a network learns to remove the
artifact and to leave the rest alone. With "simulated" the target is the same scanner's
simulation without metal (same settings, same noise seed) and the input the simulated
post-op. Contact centres come as a separate markups file; the thesis's "augmented" target
(contact centres marked at the top of the HU range) is optional.

Real pre-op CTs (the layout of :mod:`cochleaai.realct`) are cropped to the training grid
(60 x 50 x 50 voxels of 0.2 mm, axis-aligned) around the expert cochlea centre; a left ear
is mirrored into a right one, and the cochlea model that guides the array is posed on the
expert centre, apex and round-window points (a rigid fit of the shape model's landmarks).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import List, Sequence

import numpy as np

from cochleaai import batch, io
from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import write_text_whole
from cochleaai.phantom.core import make_phantom
from cochleaai.realct import find_specimens, read_specimen
from cochleaai.segmentation.pose import initial_theta, mirror
from cochleaai.shape import CochleaModel
from cochleaai.simulation.arrays import ARRAYS
from cochleaai.simulation.ct import ARTIFACT_MODES, ScanConfig, mark_contacts, simulate_postop
from cochleaai.simulation.scanner_draw import describe, draw_scan_config

#: The training grid (x, y, z voxels) and its spacing, that of the thesis.
GRID_XYZ = (60, 50, 50)
SPACING_MM = 0.2
#: Real specimens used for training by default; the others of the development set are held
#: out for the evaluation (``bench mar --real``).
TRAIN_SPECIMENS = ("T01", "T02", "F01")
EVAL_SPECIMENS = ("T03", "F03", "F09")
#: Share of the pairs made from real anatomy when real CTs are given.
REAL_SHARE = 0.5
#: Pairs that share one anatomy (a phantom is slow to build; its pairs differ in array,
#: depth, scanner and noise).
PAIRS_PER_ANATOMY = 3
#: How training pairs are made (:data:`cochleaai.simulation.ct.ARTIFACT_MODES`): "injected"
#: pairs (the shipped MARGAN's) keep the anatomy's own resolution and noise away from the
#: metal; "simulated" pairs are the simulated scanner's images with and without the implant.
PAIR_ARTIFACT_MODE = "injected"
#: The mode of a pair written before pairs recorded theirs
LEGACY_ARTIFACT_MODE = "simulated"
#: A real crop's centre is moved by up to this much (mm, each axis) per pair.
REAL_JITTER_MM = 0.6


@dataclass(frozen=True)
class PairSpec:
    index: int
    seed: int
    source: str                    # "phantom:<seed>" or "real:<folder>"
    augmented: bool = False
    artifact_mode: str = PAIR_ARTIFACT_MODE

    def text(self) -> str:
        return json.dumps({"index": self.index, "seed": self.seed, "source": self.source,
                           "augmented": self.augmented, "artifact_mode": self.artifact_mode}, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> "PairSpec":
        d = json.loads(text)
        return cls(int(d["index"]), int(d["seed"]), str(d["source"]), bool(d.get("augmented", False)),
                   str(d.get("artifact_mode", LEGACY_ARTIFACT_MODE)))


def pair_seed(seed: int, index: int) -> int:
    """The seed of pair ``index`` of a set made with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def plan_pairs(n: int, seed: int = 0, real: Sequence = (), augmented: bool = False,
               artifact_mode: str = PAIR_ARTIFACT_MODE) -> List[PairSpec]:
    """The pairs of a set: ``real`` lists specimen folders (possibly empty)."""
    if int(n) < 1:
        raise CochleaAIError("The number of pairs must be at least 1.")
    if artifact_mode not in ARTIFACT_MODES:
        raise CochleaAIError(f"Unknown artifact mode {artifact_mode!r}; use one of {', '.join(ARTIFACT_MODES)}.")
    real = [str(Path(r).absolute()) for r in real]
    out = []
    for k in range(int(n)):
        anatomy = k // PAIRS_PER_ANATOMY
        if real and (anatomy % 2 == 1 or REAL_SHARE >= 1.0):
            source = "real:" + real[(anatomy // 2) % len(real)]
        else:
            source = f"phantom:{pair_seed(seed, 10_000_000 + anatomy) % 2_000_000_000}"
        out.append(PairSpec(k, pair_seed(seed, k), source, augmented, artifact_mode))
    return out


def training_specimens(data_dir, ids: Sequence[str] = TRAIN_SPECIMENS) -> List[Path]:
    """Folders of the specimens ``ids`` found below ``data_dir``."""
    found = {s.id: s.folder for s in find_specimens(data_dir)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise CochleaAIError(f"{data_dir} holds no specimen {', '.join(missing)} "
                             f"(found: {', '.join(sorted(found)) or 'none'}).")
    return [found[i] for i in ids]


@lru_cache(maxsize=2)
def _phantom(seed: int):
    return make_phantom(int(seed), fov="roi")


@lru_cache(maxsize=6)
def _specimen_ct(folder: str):
    spec = read_specimen(folder)
    return spec, spec.ct()


def real_preop(folder, rng=None, jitter_mm: float = REAL_JITTER_MM):
    """A real specimen cropped to the training grid (right-ear orientation) and the
    parameters of its cochlea model. Returns ``(volume, theta, info)``."""
    spec, ct = _specimen_ct(str(folder))
    rng = np.random.default_rng(rng)
    pts = spec.points()
    centre = pts["center"] + 1.5 * spec.axes[2]           # about the middle of the cochlea
    if jitter_mm > 0:
        centre = centre + rng.uniform(-jitter_mm, jitter_mm, 3)
    size = np.array(GRID_XYZ, float) * SPACING_MM
    roi = ct.crop_mm(centre, size, spacing=SPACING_MM, direction=np.eye(3), default_value=-1000.0)
    arr = np.asarray(roi.array, np.float32)
    left = spec.side == "left"
    if left:
        arr = arr[:, :, ::-1]
        pts = {k: mirror(v[None], roi.center)[0] for k, v in pts.items()}
    vol = roi.copy(np.clip(np.rint(arr), -1024, 3071).astype(np.int16))
    theta = initial_theta(pts, vol.center)
    return vol, theta, {"specimen": spec.id, "side": spec.side, "mirrored": left,
                        "centre_lps": np.round(centre, 3).tolist()}


def crop_around_cochlea(volume, model, rng=None, jitter_mm: float = REAL_JITTER_MM):
    """``volume`` cropped to the training grid (axis-aligned, 0.2 mm) about the middle of the
    cochlea of ``model`` (1.5 mm from the centre of its base towards the apex), the centre
    moved by up to ``jitter_mm`` per axis; int16 HU, air outside the image."""
    model = model if isinstance(model, CochleaModel) else CochleaModel(np.asarray(model, float))
    marks = model.landmarks()
    up = marks["apex"] - marks["center"]
    centre = marks["center"] + 1.5 * up / max(float(np.linalg.norm(up)), 1e-9)
    if jitter_mm > 0:
        centre = centre + np.random.default_rng(rng).uniform(-jitter_mm, jitter_mm, 3)
    size = np.array(GRID_XYZ, float) * SPACING_MM
    roi = volume.crop_mm(centre, size, spacing=SPACING_MM, direction=np.eye(3), default_value=-1000.0)
    return roi.copy(np.clip(np.rint(np.asarray(roi.array, np.float32)), -1024, 3071).astype(np.int16))


def simulate_pair(anatomy, model, seed: int, info: dict, clean: bool = False,
                  artifact_mode: str = PAIR_ARTIFACT_MODE):
    """One pair of ``anatomy`` (HU, training grid) with the implant guided by ``model``: the
    array, scanner and noise drawn from ``seed``; ``clean``: without scatter and noise (beam
    hardening only, the thesis's ablation). ``artifact_mode`` "simulated": the target is the
    same scanner and the same draws without the implant; "injected": the target is
    ``anatomy`` itself and the input ``anatomy`` plus the artifact. Returns
    ``(preop_target, postop, simulation, info)``."""
    _, s_array, s_scan, s_sim = np.random.SeedSequence(seed).spawn(4)
    rng = np.random.default_rng(s_array)
    array = str(rng.choice(sorted(ARRAYS)))
    config = draw_scan_config(s_scan, ScanConfig(noise=False, scatter=False) if clean else ScanConfig())
    sim = simulate_postop(anatomy, model, array, None, seed=int(s_sim.generate_state(1)[0]), config=config,
                          artifact_mode=artifact_mode)
    target = anatomy.rounded_int16() if artifact_mode == "injected" else sim.clean
    info = dict(info, array=array, depth_deg=round(float(sim.insertion.depth_deg), 1), scanner=describe(config),
                scatter_to_primary=round(sim.scatter_to_primary, 5), artifact_mode=artifact_mode)
    return target, sim.postop, sim, info


def make_pair(spec: PairSpec, clean: bool = False):
    """Simulate one pair (``clean``: see :func:`simulate_pair`). Returns ``(preop_target,
    postop, simulation, info)``."""
    s_anat = np.random.SeedSequence(spec.seed).spawn(4)[0]
    kind, _, value = spec.source.partition(":")
    if kind == "phantom":
        ph = _phantom(int(value))
        anatomy, model = ph.ct, ph.model
        info = {"source": "phantom", "phantom_seed": int(value)}
    elif kind == "real":
        anatomy, model, info = real_preop(value, np.random.default_rng(s_anat))
        info["source"] = "real"
    else:
        raise CochleaAIError(f"Unknown pair source {spec.source!r}.")
    return simulate_pair(anatomy, model, spec.seed, info, clean, spec.artifact_mode)


def write_pair(folder, target, postop, sim, info: dict, augmented: bool = False) -> dict:
    """One pair's files into the new folder ``folder``; returns its flat manifest row."""
    out = Path(folder)
    out.mkdir(parents=True)
    io.write_volume(target, out / "preop.nrrd")
    io.write_volume(postop, out / "postop.nrrd")
    io.write_volume(sim.metal, out / "metal.nrrd")
    io.write_markups_json(out / "contacts.mrk.json", sim.contacts_markups())
    if augmented:
        io.write_volume(mark_contacts(target, sim.insertion.contacts).rounded_int16(), out / "target_augmented.nrrd")
    info = dict(info, n_contacts=int(len(sim.insertion.contacts)), metal_voxels=int(sim.metal.array.sum()))
    write_text_whole(out / "pair.json", json.dumps(info, indent=1))
    flat = {k: v for k, v in info.items() if not isinstance(v, (dict, list))}
    flat.update({f"scanner_{k}": v for k, v in info["scanner"].items()})
    return flat


def pair_job(spec_text: str, name: str, folder) -> dict:
    """Batch job: one pair into ``folder/name/``."""
    spec = PairSpec.parse(spec_text)
    target, postop, sim, info = make_pair(spec)
    info.update({"index": spec.index, "seed": spec.seed})
    return write_pair(Path(folder) / name, target, postop, sim, info, spec.augmented)


def simulate_pairs(out, n: int, seed: int = 0, real_dir=None, real_ids: Sequence[str] = TRAIN_SPECIMENS,
                   augmented: bool = False, progress=None, artifact_mode: str = PAIR_ARTIFACT_MODE,
                   **batch_options) -> dict:
    """Write ``n`` pairs into ``out`` (``pair_00000/`` ...), with ``manifest.csv`` (one row per
    pair, failures with their error) and ``manifest.json`` (the settings)."""
    real = training_specimens(real_dir, real_ids) if real_dir else []
    specs = plan_pairs(n, seed, real, augmented, artifact_mode)
    items = [batch.Item(f"pair_{s.index:05d}", s.text()) for s in specs]
    out = Path(out)
    signature = json.dumps({"format": "cochleaai.pairs/1", "seed": seed, "augmented": augmented,
                            "artifact_mode": artifact_mode})
    rows = batch.run(pair_job, items, out, signature=signature, progress=progress, **batch_options)
    table = batch.write_csv(out / "manifest.csv", rows)
    manifest = {"format": "cochleaai.pairs/1", "n": int(n), "seed": int(seed), "augmented": bool(augmented),
                "artifact_mode": artifact_mode,
                "grid_xyz": list(GRID_XYZ), "spacing_mm": SPACING_MM,
                "real_specimens": [Path(r).name for r in real],
                "held_out_specimens": [i for i in EVAL_SPECIMENS if i not in real_ids] if real else [],
                "pairs": [r["name"] for r in rows if r.get("status") in ("done", "resumed")],
                "failed": [{"name": r["name"], "error": r.get("error")} for r in rows if r.get("status") == "failed"]}
    write_text_whole(out / "manifest.json", json.dumps(manifest, indent=1))
    return {"manifest": str(out / "manifest.json"), "csv": str(table), "pairs": len(manifest["pairs"]),
            "failed": len(manifest["failed"]), "resumed": sum(r.get("status") == "resumed" for r in rows)}


def read_pair(folder):
    """``(postop, preop_target, metal_mask)`` volumes of one pair folder."""
    folder = Path(folder)
    return (io.read_volume(folder / "postop.nrrd"), io.read_volume(folder / "preop.nrrd"),
            io.read_volume(folder / "metal.nrrd"))


def pair_folders(pairs_dir) -> List[Path]:
    """The complete pairs listed by a set's manifest (or every pair folder found)."""
    pairs_dir = Path(pairs_dir)
    if not pairs_dir.is_dir():
        raise CochleaAIError(f"{pairs_dir} is not a folder of simulated pairs.")
    man = pairs_dir / "manifest.json"
    if man.is_file():
        names = json.loads(man.read_text()).get("pairs", [])
        folders = [pairs_dir / n for n in names]
    else:
        folders = sorted(p.parent for p in pairs_dir.glob("*/postop.nrrd"))
    folders = [f for f in folders if (f / "postop.nrrd").is_file() and (f / "preop.nrrd").is_file()]
    if not folders:
        raise CochleaAIError(f"{pairs_dir} holds no simulated pairs; make them with "
                             "'python -m cochleaai simulate-pairs --out DIR --n N'.")
    return folders
