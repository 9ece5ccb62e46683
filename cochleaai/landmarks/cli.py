"""``python -m cochleaai landmarks train|detect`` (one-shot landmark detection)."""
from __future__ import annotations

import json
from pathlib import Path

from .. import batch
from ..threads import set_torch_threads


def _train_command(args) -> str:
    """The command line that repeats this training (recorded in the model card)."""
    parts = ["python -m cochleaai landmarks train", f"--reference {args.reference}", f"--mask {args.mask}",
             f"--landmarks {args.landmarks}", f"--validation {args.validation}",
             f"--validation-mask {args.validation_mask}", f"--segment {args.segment}",
             f"--seed {args.seed}", f"--max-steps {args.max_steps}"]
    if args.max_seconds is not None:
        parts.append(f"--max-seconds {args.max_seconds}")
    if args.threads:
        parts.append(f"--threads {args.threads}")
    parts.append(f"--out {args.out}")
    return " ".join(parts)


def _cmd_train(args) -> int:
    from .. import io
    from ..errors import CochleaAIError
    from ..progress import tqdm_progress
    from .files import read_structure_mask
    from .model_io import save_model
    from .training import TrainConfig, train_oneshot

    set_torch_threads(args.threads)
    reference = io.read_volume(args.reference)
    validation = io.read_volume(args.validation)
    ref_mask = read_structure_mask(args.mask, reference, args.segment)
    val_mask = read_structure_mask(args.validation_mask, validation, args.segment)
    landmarks = io.read_markups(args.landmarks)
    if args.max_steps < 1:
        raise CochleaAIError("--max-steps must be at least 1.")
    cfg = TrainConfig(max_steps=args.max_steps, max_seconds=args.max_seconds)
    with tqdm_progress("landmarks train", disable=args.quiet) as progress:
        model = train_oneshot(reference, ref_mask, landmarks, validation, val_mask, cfg, seed=args.seed,
                              structure=args.segment or "structure", progress=progress)
    training = dict(model.card["training"])
    training["command"] = _train_command(args)
    training["data"] = {"reference": str(args.reference), "reference_mask": str(args.mask),
                        "landmarks": str(args.landmarks), "validation": str(args.validation),
                        "validation_mask": str(args.validation_mask), "segment": args.segment}
    if args.data_note:
        training["data"]["note"] = args.data_note
    pt = save_model(model, args.out, training=training)
    if not args.quiet:
        print(json.dumps({"model": str(pt), "card": str(pt.with_suffix(".json")),
                          "train_sec": training["train_sec"], "steps": training["steps"],
                          "stopped": training["stopped"],
                          "best_validation_bce": round(training["best_validation_bce"], 5)}, indent=2))
    return 0


#: Models loaded in this process by (path, checksum): a batch worker reads and checks its
#: model once, and again if the file was retrained since (Dask workers live on).
_MODELS: dict = {}


def _model(path=None, sha256=None):
    from .model_io import load_model

    key = (str(path or ""), sha256)
    if key not in _MODELS:
        _MODELS[key] = load_model(path)
    return _MODELS[key]


def _warm_up(model=None, sha256=None) -> None:
    """A batch worker imports the detector and reads and checks its model before its first volume."""
    from . import detect  # noqa: F401

    _model(model, sha256)


def _detect_job(path, name, folder, model=None, sha256=None, use_localisation=True) -> dict:
    """One volume of ``landmarks detect``: ``<name>.mrk.json`` in ``folder``, its table row."""
    from .. import io
    from .detect import detect_landmarks

    det = detect_landmarks(_model(model, sha256), io.read_volume(path), use_localisation=use_localisation)
    markups = det.landmarks
    markups.name = f"{name} landmarks"
    io.write_markups_json(Path(folder) / f"{name}.mrk.json", markups)
    return det.row(name)


def _table_row(row: dict) -> dict:
    """A runner row as a line of confidence.csv: a volume that failed (not found, not an
    image) is flagged with confidence 0 and the reason."""
    if row["status"] == "failed":
        return {**row, "volume": row["name"], "confidence": 0.0, "flagged": True, "reason": row["error"]}
    return {**row, "file": row["output"]} if row.get("output") else dict(row)


def _cmd_detect(args) -> int:
    from functools import partial

    from .. import batch
    from ..progress import tqdm_progress

    from .model_io import load_model

    model = load_model(args.model)      # a missing or damaged model stops here, before the batch
    sha256 = model.card.get("sha256")
    path = str(Path(args.model).absolute()) if args.model else None    # as workers elsewhere see it
    _MODELS[(str(path or ""), sha256)] = model
    items = batch.items_from_files(args.inputs)
    out = Path(args.out)
    job = partial(_detect_job, model=path, sha256=sha256, use_localisation=not args.baseline)
    with tqdm_progress("landmarks detect", disable=args.quiet) as progress:
        rows = batch.run(job, items, out, signature=f"{sha256} baseline={args.baseline}",
                         progress=progress, warm_up=partial(_warm_up, path, sha256), **batch.options(args))
    rows = [_table_row(r) for r in rows]
    keys = ["volume", "confidence", "flagged", "reason", "localisation_passes", "converged",
            "ncc_rigid", "ncc_final", "seconds", "file"]
    batch.write_csv(out / "confidence.csv", rows, keys)
    (out / "detections.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    if not args.quiet:
        for row in rows:
            flag = "  FLAGGED: " + row["reason"] if row.get("flagged") else ""
            print(f"{row['volume']}: confidence {row['confidence']:.2f}{flag}")
        print(f"point lists and confidence.csv in {out}")
    return 0 if all(not r.get("flagged") for r in rows) else 1


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("landmarks", help="one-shot landmark detection (train from one reference, detect)",
                              description="Train the one-shot landmark model from one annotated reference, "
                                          "or detect the landmarks in many volumes.")
    sub = p.add_subparsers(dest="landmarks_command", required=True, metavar="<train|detect>")

    t = sub.add_parser("train", help="train a model from one annotated reference and one validation volume")
    t.add_argument("--reference", required=True, help="reference CT volume (.nrrd, .nii.gz, ...)")
    t.add_argument("--mask", required=True, help="structure of interest on the reference (.seg.nrrd or label volume)")
    t.add_argument("--landmarks", required=True, help="reference landmarks (.mrk.json or .fcsv)")
    t.add_argument("--validation", required=True, help="validation CT volume")
    t.add_argument("--validation-mask", required=True, help="structure of interest on the validation volume")
    t.add_argument("--segment", default="Cochlea", help="segment name in .seg.nrrd masks (default Cochlea)")
    t.add_argument("--out", required=True, help="model path without extension (writes .pt and .json)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-steps", type=int, default=800, help="most optimiser steps (default 800)")
    t.add_argument("--max-seconds", type=float, default=None, help="stop training after this time")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--data-note", default="", help="a sentence about the data, stored in the model card")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    d = sub.add_parser("detect", help="place the model's landmarks in one or more volumes",
                       description="Writes <name>.mrk.json per volume, confidence.csv and detections.json. "
                                   "Exit status 1 when a volume is flagged (low confidence or not found). "
                                   "A rerun skips the volumes already done; see docs/batch.md.")
    d.add_argument("inputs", nargs="+", metavar="IN", help="volume files or folders of volumes")
    d.add_argument("--model", default=None, help="model .pt (default: the shipped phantom model)")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--baseline", action="store_true",
                   help="registration only, from the image centres (no CNN localisation)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_arguments(d, workers=1)
    d.set_defaults(func=_cmd_detect)
