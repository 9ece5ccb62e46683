"""The atlas-registration peer (:mod:`cochleaai.peers.atlas`, SlicerCochlea's approach) beside
our segmentation in ``bench segment-real --peers``, scored alike
(:func:`cochleaai.realct.score_segmentation`).

Atlases are chosen leave-one-out: for each target, every other specimen of ``--data`` is
registered (from its three expert points) to every other, never to the target; the one with
the best mean Dice is the single atlas, the best three vote. Each registration is done once
per run. The peer runs from the target's three points (one atlas, and the vote of three)
and from its centre point with a rotation search (one atlas); ours from three points and
from the centre only. The seconds per volume are those of the registrations (the vote: all
three); the leave-one-out choice is reported apart. ``--quick``: two targets, the atlases
chosen among three of the remaining specimens; ``--tiny``: the same with elastix's short
smoke-test schedule (figures that mean nothing).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from cochleaai import realct
from cochleaai.peers import atlas as peer
from cochleaai.progress import Progress

#: The peer's methods: (name, start, atlases voted, the start of ours it is compared with).
PEERS = (("atlas", "3 points", 1, "3 points"),
         ("atlas vote of 3", "3 points", 3, "3 points"),
         ("atlas", "centre + rotation search", 1, "centre only"))
#: Our three-point segmentation without the vestibule's wedge: the cochlea alone, not labelled
#: like the data set's cylinder-cut cochlear part that the atlas's label (and our default)
#: carries (a variant of bench segment-real).
COCHLEA_ALONE = "3 points, cochlea alone"
#: Our starts shown beside the peer.
OURS = ("3 points", "centre only", COCHLEA_ALONE)
QUICK_TARGETS = 2
QUICK_CANDIDATES = 3
COLUMNS = ("dice", "volume_ratio", "hd95_mm", "seconds")


def figure_key(name: str) -> str:
    """A figure name's part for a start or method: ``"centre + rotation search"`` ->
    ``centre_rotation_search``."""
    return name.replace(" + ", "_").replace(",", "").replace(" ", "_").replace("-", "_")


class Registrations:
    """The atlas-to-target registrations of one run, each done once, with their scores."""

    def __init__(self, specimens: Sequence[realct.Specimen], progress=None, fast: bool = False):
        self.specimens = {s.id: s for s in specimens}
        self.fast = fast
        self.progress = Progress.wrap(progress)
        self.atlases: Dict[str, peer.Atlas] = {}
        self.truths: Dict[str, tuple] = {}
        self.done: Dict[tuple, dict] = {}

    def truth(self, sid: str) -> tuple:
        """The specimen's label and the cochlear part of it."""
        if sid not in self.truths:
            labels = self.specimens[sid].labels()
            self.truths[sid] = (labels, realct.cochlear_part(labels, self.specimens[sid]))
        return self.truths[sid]

    def __call__(self, atlas_id: str, target_id: str, start: str, ct=None, version: str = "") -> dict:
        """``{"mask", "seconds", "dice", ...}`` of atlas ``atlas_id`` registered to ``target_id``
        (to ``ct``, the target re-imaged as ``version``, if given)."""
        key = (atlas_id, target_id, start, version)
        if key not in self.done:
            self.progress(0.0, f"atlas {atlas_id} -> {target_id}{' (' + version + ')' if version else ''}: {start}")
            if atlas_id not in self.atlases:
                self.atlases[atlas_id] = peer.Atlas.from_specimen(self.specimens[atlas_id])
            target = self.specimens[target_id]
            points = target.points(peer.ROLES if start == "3 points" else ("center",))
            mask, seconds = peer.segment_with_atlas(target.ct() if ct is None else ct, points, target.side,
                                                    self.atlases[atlas_id], start, fast=self.fast)
            self.done[key] = dict(self.score(mask, target_id), mask=mask, seconds=seconds)
        return self.done[key]

    def score(self, mask, target_id: str) -> dict:
        labels, part = self.truth(target_id)
        return realct.score_segmentation(mask, labels, self.specimens[target_id], part)


def _summary(rows: List[dict]) -> dict:
    dice = [r["dice"] for r in rows]
    return {"dice_mean": float(np.mean(dice)), "dice_min": float(np.min(dice)),
            "volume_ratio_mean": float(np.mean([r["volume_ratio"] for r in rows])),
            "hd95_mm_mean": float(np.mean([r["hd95_mm"] for r in rows])),
            "sec_median": float(np.median([r["seconds"] for r in rows]))}


def run_peers(ours: List[dict], targets: Sequence[realct.Specimen], specimens: Sequence[realct.Specimen],
              quick: bool = False, progress=None, tiny: bool = False) -> dict:
    """Figures of the peer beside ``ours`` (the benchmark's rows of our starts :data:`OURS` on
    ``targets``); atlases from ``specimens`` (never the target)."""
    p = Progress.wrap(progress)
    registrations = Registrations(specimens, fast=tiny)
    rows, choice = [], set()
    for n, target in enumerate(targets):
        registrations.progress = p.stage(n / len(targets), (n + 1) / len(targets))
        ranked, pairs = choose_atlases(registrations, target, targets, specimens, quick)
        choice |= pairs
        common = {"specimen": target.id, "side": target.side}
        rows += [dict(common, method="ours", start=r["start"], atlas="", **{c: r[c] for c in COLUMNS})
                 for r in ours if r["specimen"] == target.id and r["start"] in OURS]
        for name, start, k, _ in PEERS:
            chosen = [a for a, _ in ranked[:k]]
            done = [registrations(a, target.id, start) for a in chosen]
            mask = done[0]["mask"] if k == 1 else peer.vote([d["mask"] for d in done])
            score = done[0] if k == 1 else registrations.score(mask, target.id)
            rows.append(dict(common, method=name, start=start, atlas="+".join(chosen),
                             atlas_choice_dice=round(float(np.mean([m for a, m in ranked[:k]])), 4),
                             **{c: score[c] for c in COLUMNS[:-1]}, seconds=sum(d["seconds"] for d in done)))
    p(1.0, "peers done")
    return figures(rows, len(registrations.done), sum(registrations.done[(a, b, "3 points", "")]["seconds"]
                                                      for a, b in choice))


def choose_atlases(registrations: Registrations, target: realct.Specimen, targets: Sequence[realct.Specimen],
                   specimens: Sequence[realct.Specimen], quick: bool = False):
    """Leave-one-out atlas choice for ``target``: the candidates (every specimen but the target;
    ``quick``: :data:`QUICK_CANDIDATES` that are no target) registered from their three points
    to each other, ranked by mean Dice. Returns ``(ranked [(id, dice)], the pairs registered)``."""
    others = [s.id for s in specimens if s.id not in {t.id for t in targets}][:QUICK_CANDIDATES] if quick \
        else [s.id for s in specimens if s.id != target.id]
    pairs = {(a, b): registrations(a, b, "3 points") for a in others for b in others if a != b}
    return peer.rank_atlases({k: r["dice"] for k, r in pairs.items()}, others), set(pairs)


def figures(rows: List[dict], registrations: int, choice_seconds: float) -> dict:
    """Per-specimen rows, a summary per method, and the ratios peer / ours."""
    out = {"peers/registrations": registrations, "peers/atlas_choice_seconds": round(choice_seconds, 1)}
    methods = [("ours", start) for start in OURS] + [(name, start) for name, start, _, _ in PEERS]
    summary = {}
    for name, start in methods:
        sel = [r for r in rows if r["method"] == name and r["start"] == start]
        if sel:
            summary[(name, start)] = _summary(sel)
            key = figure_key(f"{name} {start}")
            out.update({f"peers/{key}/{k}": v for k, v in summary[(name, start)].items()})
    for name, start, _, theirs in PEERS:
        for mine in (theirs, COCHLEA_ALONE) if theirs == "3 points" else (theirs,):
            if (name, start) in summary and ("ours", mine) in summary:
                key = f"peers/{figure_key(f'{name} {start}')}_vs_ours_{figure_key(mine)}"
                for k in ("dice_mean", "hd95_mm_mean", "sec_median"):
                    out[f"{key}/{k}_ratio"] = summary[(name, start)][k] / summary[("ours", mine)][k]
    out["peers/summary"] = [dict(method=name, start=start, **{k: round(v, 4) for k, v in s.items()})
                            for (name, start), s in summary.items()]
    out["peers/per_specimen"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                                 for r in rows]
    return out
