"""``python -m cochleaai landmarks train|detect`` (one-shot landmark detection)."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from cochleaai import arguments, batch, io, realct
from cochleaai.arguments import add_force
from cochleaai.errors import EXIT_FLAGGED, CochleaAIError
from cochleaai.io.outputs import OutputPlan, write_text_whole
from cochleaai.landmarks.detect import detect_with_references
from cochleaai.landmarks.files import read_structure_mask
from cochleaai.landmarks.model_io import check_side, load_model, save_model
from cochleaai.landmarks.training import TrainConfig, train_oneshot
from cochleaai.model_files import model_paths
from cochleaai.progress import tqdm_progress
from cochleaai.threads import set_torch_threads


def _train_command(args) -> str:
    """The command line that repeats this training (recorded in the model card)."""
    parts = ["python -m cochleaai landmarks train"]
    if args.specimen:
        parts += [f"--specimen {args.specimen}", f"--structure {args.structure}"]
    else:
        parts += [f"--reference {args.reference}", f"--mask {args.mask}", f"--landmarks {args.landmarks}"]
    if args.validation:
        parts += [f"--validation {args.validation}", f"--validation-mask {args.validation_mask}"]
    parts += [f"--segment {args.segment}", f"--side {args.side}", f"--seed {args.seed}",
              f"--max-steps {args.max_steps}"]
    if args.max_seconds is not None:
        parts.append(f"--max-seconds {args.max_seconds}")
    if args.threads:
        parts.append(f"--threads {args.threads}")
    parts.append(f"--out {args.out}")
    return " ".join(parts)


def _cmd_train(args) -> int:
    set_torch_threads(args.threads)
    if bool(args.validation) != bool(args.validation_mask):
        raise CochleaAIError("Give --validation and --validation-mask together, or neither.")
    inputs = [args.reference, args.mask, args.landmarks, args.validation, args.validation_mask]
    OutputPlan(inputs, args.force).files(model_paths(args.out), "model file")
    specimen = None
    if args.specimen:                  # a specimen folder of the real-CT data set layout

        specimen = realct.read_specimen(args.specimen)
        reference = specimen.ct()
        ref_mask = specimen.structure_mask(args.structure, reference)
        landmarks = specimen.markups()
        if args.side == "auto":
            args.side = specimen.side
        if args.segment == "Cochlea":
            args.segment = "Labyrinth" if args.structure == "labyrinth" else "Cochlea"
    elif not (args.reference and args.mask and args.landmarks):
        raise CochleaAIError("Give --reference, --mask and --landmarks, or --specimen DIR.")
    else:
        reference = io.read_volume(args.reference)
        ref_mask = read_structure_mask(args.mask, reference, args.segment)
        landmarks = io.read_markups(args.landmarks)
    validation = val_mask = None
    if args.validation:
        validation = io.read_volume(args.validation)
        val_mask = read_structure_mask(args.validation_mask, validation, args.segment)
    cfg = TrainConfig(max_steps=args.max_steps, max_seconds=args.max_seconds)
    with tqdm_progress("landmarks train", disable=args.quiet) as progress:
        model = train_oneshot(reference, ref_mask, landmarks, validation, val_mask, cfg, seed=args.seed,
                              structure=args.segment or "structure", progress=progress, side=args.side)
    training = dict(model.card["training"])
    training["command"] = _train_command(args)
    if specimen is not None:
        training["data"] = {"specimen": specimen.id, "structure": args.structure, "side": args.side,
                            "reference": str(specimen.ct_path.name), "reference_mask": str(specimen.label_path.name),
                            "landmarks": f"{specimen.id}_DESC.json (RAS in the file, converted to LPS)",
                            "citation": realct.CITATION, "licence": realct.LICENCE}
    else:
        training["data"] = {"reference": str(args.reference), "reference_mask": str(args.mask),
                            "landmarks": str(args.landmarks), "side": args.side}
    training["data"].update({"validation": str(args.validation or ""),
                             "validation_mask": str(args.validation_mask or ""), "segment": args.segment})
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
    key = (str(path or ""), sha256)
    if key not in _MODELS:
        _MODELS[key] = load_model(path)
    return _MODELS[key]


def _warm_up(models=(None,), sha256s=(None,)) -> None:
    """A batch worker imports the detector and reads and checks its models before its first volume."""
    for m, h in zip(models, sha256s):
        _model(m, h)


def _detect_job(path, name, folder, models=(None,), sha256s=(None,), use_localisation=True, side=None) -> dict:
    """One volume of ``landmarks detect``: ``<name>.mrk.json`` in ``folder``, its table row.
    Several models (one per reference) are fused."""
    det = detect_with_references([_model(m, h) for m, h in zip(models, sha256s)], io.read_volume(path),
                                 use_localisation=use_localisation, side=side)
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
    out = OutputPlan(args.inputs + (args.model or [])).folder(args.out, ())   # resumable: results there are kept
    side = check_side(args.side, "--side")
    paths, sha256s = [], []
    for given in (args.model or [None]):
        model = load_model(given)      # a missing or damaged model stops here, before the batch
        sha256s.append(model.card.get("sha256"))
        paths.append(str(Path(given).absolute()) if given else None)    # as workers elsewhere see it
        _MODELS[(str(paths[-1] or ""), sha256s[-1])] = model
    items = batch.items_from_files(args.inputs)
    job = partial(_detect_job, models=tuple(paths), sha256s=tuple(sha256s), use_localisation=not args.baseline,
                  side=side)
    # the tables too are written under the folder's lock: no other run comes in between
    with batch.locked(out), tqdm_progress("landmarks detect", disable=args.quiet) as progress:
        rows = batch.run(job, items, out, signature=f"{','.join(map(str, sha256s))} baseline={args.baseline} "
                                                    f"side={side}",
                         progress=progress, warm_up=partial(_warm_up, tuple(paths), tuple(sha256s)),
                         **batch.options(args))
        rows = [_table_row(r) for r in rows]
        keys = ["volume", "confidence", "flagged", "reason", "localisation_passes", "converged",
                "ncc_rigid", "ncc_final", "side", "mirrored", "references", "spread_mm", "seconds", "file"]
        table = batch.write_csv(out / "confidence.csv", rows, keys)
        write_text_whole(out / "detections.json", json.dumps(rows, indent=2))
    if not args.quiet:
        for row in rows:
            flag = "  FLAGGED: " + row["reason"] if row.get("flagged") else ""
            print(f"{row['volume']}: confidence {row['confidence']:.2f}{flag}")
        print(f"point lists and confidence.csv in {out}")
    return batch.exit_status(rows, table, "volumes", flagged=lambda row: row.get("flagged"))


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("landmarks", help="one-shot landmark detection (train from one reference, detect)",
                              description="Train the one-shot landmark model from one annotated reference, "
                                          "or detect the landmarks in many volumes.")
    sub = p.add_subparsers(dest="landmarks_command", required=True, metavar="<train|detect>")

    t = sub.add_parser("train", help="train a model from one annotated reference and one validation volume")
    t.add_argument("--reference", help="reference CT volume (.nrrd, .nii.gz, ...)")
    t.add_argument("--mask", help="structure of interest on the reference (.seg.nrrd or label volume)")
    t.add_argument("--landmarks", help="reference landmarks (.mrk.json or .fcsv)")
    t.add_argument("--specimen", help="instead of the three above: a specimen folder of the real temporal-bone "
                                      "CT data set (<id>_CT_RAW, <id>_CT_LABELS, <id>_DESC.json): its CT, expert "
                                      "label, five landmarks and side")
    t.add_argument("--structure", default="labyrinth", choices=("labyrinth", "cochlea"),
                   help="with --specimen: the whole labelled bony labyrinth (default) or its cochlear part")
    t.add_argument("--validation", default=None,
                   help="validation CT volume (optional; default: the reference under an unseen pose)")
    t.add_argument("--validation-mask", default=None, help="structure of interest on the validation volume")
    t.add_argument("--side", default="auto", choices=("left", "right", "auto"),
                   help="the reference's ear (default auto: unknown; detection then tries both ears)")
    t.add_argument("--segment", default="Cochlea", help="segment name in .seg.nrrd masks (default Cochlea)")
    t.add_argument("--out", required=True, help="model path without extension (writes .pt and .json)")
    add_force(t)
    t.add_argument("--seed", type=arguments.seed, default=0)
    t.add_argument("--max-steps", type=arguments.integer(1, 10 ** 6), default=800,
                   help="most optimiser steps (default 800)")
    t.add_argument("--max-seconds", type=arguments.positive, default=None, help="stop training after this time")
    t.add_argument("--threads", type=arguments.threads, default=None, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--data-note", default="", help="a sentence about the data, stored in the model card")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    d = sub.add_parser("detect", help="place the model's landmarks in one or more volumes",
                       description="Writes <name>.mrk.json per volume, confidence.csv and detections.json. "
                                   f"Exit status {EXIT_FLAGGED} when a volume is flagged (low confidence or not found). "
                                   "A rerun skips the volumes already done; see docs/batch.md.")
    d.add_argument("inputs", nargs="+", metavar="IN", help="volume files or folders of volumes")
    d.add_argument("--model", action="append", default=None,
                   help="model .pt (default: the shipped real-CT model); repeat it to fuse several "
                        "references (median; their spread flags disagreement)")
    d.add_argument("--side", default="auto", choices=("left", "right", "auto"),
                   help="the targets' ear; default auto: both ears are tried and the better match kept")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--baseline", action="store_true",
                   help="registration only, from the image centres (no CNN localisation)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_arguments(d, workers=1)
    d.set_defaults(func=_cmd_detect)
