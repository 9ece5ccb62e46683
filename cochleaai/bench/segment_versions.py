"""Segmentation on development scans re-imaged as other scanners (``--data DIR``).

Every specimen of ``--data`` is re-imaged as each version of
:data:`cochleaai.bench.scan_versions.VERSIONS` (clinical CT with 0.3 x 0.3 x 0.6 mm and 0.5 mm
voxels, cone-beam-like CT with grey values that are not HU), and segmented from its three
expert points by ours and by the atlas peer (:mod:`cochleaai.peers.atlas`: one atlas and the
vote of three, chosen leave-one-out on the original scans as in ``bench segment-real
--peers``; the atlases keep their own scanner). Each answer is scored against the cochlear
part of the expert label (:func:`cochleaai.realct.score_segmentation`), beside the label
itself pushed through the version's blur and grid: the best answer on the scan's own grid.
Ours is a continuous surface with a label map on a 0.2 mm grid, so it may beat that
ceiling; the atlas's label lands on the scan's grid. Ours runs twice: by default, with the
vestibule's wedge (``SegmentConfig.vestibule_wedge_deg``), labelled like the cylinder-cut
cochlear part that the atlas's label carries, and the cochlea alone. ``--quick``: two specimens, atlases
chosen among three others; ``--tiny``: one specimen, short fits and elastix's smoke-test
schedule (figures that mean nothing). Needs the ``peers`` extra (itk-elastix), except with
``--no-peers``: ours and the ceiling alone, on every specimen in a few minutes.
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from cochleaai import realct
from cochleaai.bench.scan_versions import VERSIONS, degrade, label_through_grid
from cochleaai.bench.segment import TINY_FIT
from cochleaai.bench.segment_peers import QUICK_TARGETS, Registrations, choose_atlases, figure_key
from cochleaai.errors import CochleaAIError
from cochleaai.peers.atlas import load_itk, vote
from cochleaai.progress import Progress
from cochleaai.segmentation.config import COCHLEA_ALONE_DEG, SegmentConfig
from cochleaai.segmentation.pipeline import relabel, segment
from cochleaai.threads import torch_threads

NAME = "segment-versions"
DESCRIPTION = ("segmentation on real CT re-imaged as other scanners (--data DIR): ours, the atlas peer and the "
               "label-through-grid ceiling, per version")
#: Where the development copy of ``--data`` lies, from the project root
DATA = "../shared/data/real-ct"
OPTIONS = [("--data", {"help": f"a folder of specimens with expert labels (from the project root: {DATA})"}),
           ("--no-peers", {"action": "store_true",
                           "help": "ours and the label-through-the-grid ceiling only: no atlas peer, no itk-elastix"})]
#: Ours without the vestibule's wedge (the default has it, like the cylinder-cut cochlear
#: part the atlas carries): the cochlea alone.
COCHLEA_ALONE_METHOD = "ours, cochlea alone"
#: The methods of the table, in its order.
METHODS = ("ours", COCHLEA_ALONE_METHOD, "atlas", "atlas vote of 3", "label through the grid")


def _summary(rows) -> dict:
    out = {}
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    for method in methods:
        sel = [r for r in rows if r["method"] == method]
        key = figure_key(method)
        out[f"{key}/dice_mean"] = float(np.mean([r["dice"] for r in sel]))
        out[f"{key}/dice_min"] = float(np.min([r["dice"] for r in sel]))
        out[f"{key}/volume_ratio_mean"] = float(np.mean([r["volume_ratio"] for r in sel]))
        out[f"{key}/hd95_mm_mean"] = float(np.mean([r["hd95_mm"] for r in sel]))
        if method != "label through the grid":
            out[f"{key}/sec_median"] = float(np.median([r["seconds"] for r in sel]))
    for mine in ("ours", COCHLEA_ALONE_METHOD):
        key = figure_key(mine)
        out[f"{key}_minus_ceiling/dice_mean"] = out[f"{key}/dice_mean"] - out["label_through_the_grid/dice_mean"]
        for peer in [m for m in ("atlas", "atlas vote of 3") if m in methods]:
            out[f"{key}_minus_{figure_key(peer)}/dice_mean"] = out[f"{key}/dice_mean"] - \
                out[f"{figure_key(peer)}/dice_mean"]
    return out


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, data=None, tiny: bool = False,
        no_peers: bool = False) -> dict:
    if not data:
        raise CochleaAIError("bench segment-versions needs --data DIR: a folder of specimens with expert labels "
                             "(for example ../shared/data/real-ct).")
    if not no_peers:
        load_itk()                          # before any work: a clear error when itk-elastix is missing
    p = Progress.wrap(progress)
    specimens = realct.find_specimens(data)
    targets = specimens[:1] if tiny else specimens[:QUICK_TARGETS] if quick else specimens
    registrations = Registrations(specimens, fast=tiny)
    changes = TINY_FIT if tiny else {}
    rows = []
    with torch_threads(1):
        for n, target in enumerate(targets):
            registrations.progress = p.stage(n / len(targets), (n + 0.5) / len(targets))
            chosen = []
            if not no_peers:
                ranked, _ = choose_atlases(registrations, target, targets, specimens, quick or tiny)
                chosen = [a for a, _ in ranked[:3]]
            labels, part = registrations.truth(target.id)
            ct = target.ct()
            for m, version in enumerate(VERSIONS):
                p((n + 0.5 + 0.5 * m / len(VERSIONS)) / len(targets), f"{target.id}: {version.name}")
                # one noise per specimen and version, whatever else the run does
                scan = degrade(ct, version, np.random.default_rng([seed, n, m]))
                common = {"specimen": target.id, "side": target.side, "version": version.name}
                ceiling = label_through_grid(labels.copy(part.astype(np.uint8)), version.spacing_mm)
                rows.append(dict(common, method="label through the grid",
                                 **realct.score_segmentation(ceiling, labels, target, part)))
                t0 = time.perf_counter()
                fit = segment(scan, target.points(), SegmentConfig(side=target.side, **changes))
                seconds = time.perf_counter() - t0
                # the cochlea alone: the same fit relabelled (what segmenting with it gives), so
                # both rows take the fit's seconds
                alone = relabel(fit, COCHLEA_ALONE_DEG)
                for method, result in (("ours", fit), (COCHLEA_ALONE_METHOD, alone)):
                    rows.append(dict(common, method=method, seconds=seconds, suspect=bool(result.quality["suspect"]),
                                     **realct.score_segmentation(result.sroi, labels, target, part)))
                if no_peers:
                    continue
                done = [registrations(a, target.id, "3 points", ct=scan, version=version.name) for a in chosen]
                rows.append(dict(common, method="atlas", atlas=chosen[0], seconds=done[0]["seconds"],
                                 **{k: done[0][k] for k in ("dice", "volume_ratio", "hd95_mm")}))
                voted = registrations.score(vote([d["mask"] for d in done]), target.id)
                rows.append(dict(common, method="atlas vote of 3", atlas="+".join(chosen),
                                 seconds=sum(d["seconds"] for d in done),
                                 **{k: voted[k] for k in ("dice", "volume_ratio", "hd95_mm")}))
    p(1.0, "done")
    figures = {"specimens": [s.id for s in targets], "data": str(data), "peers": not no_peers,
               "versions": [asdict(v) for v in VERSIONS]}
    for version in VERSIONS:
        sel = [r for r in rows if r["version"] == version.name]
        figures.update({f"{figure_key(version.name)}/{k}": v for k, v in _summary(sel).items()})
    figures["flagged"] = int(sum(r.get("suspect", False) for r in rows))
    figures["per_specimen"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    return figures
