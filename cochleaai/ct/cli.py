"""Commands of ``cochleaai.ct``: ``simulate-ci`` and ``mar`` (registered by cochleaai.cli)."""
from __future__ import annotations

import json
from pathlib import Path

def load_model_parameters(path) -> "list":
    """Ten cochlea shape parameters (LPS pose) from a JSON file: the phantom's ``truth.json``
    (key ``theta``), a fitted-shape file with ``theta`` or ``parameters``, or a bare list."""
    from ..errors import CochleaAIError

    p = Path(path)
    if not p.is_file():
        raise CochleaAIError(f"The cochlea model file {p} does not exist.")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise CochleaAIError(f"The cochlea model file {p} is not valid JSON ({exc}).") from None
    if isinstance(data, dict):
        data = data.get("theta", data.get("parameters"))
        if isinstance(data, dict):
            from ..shape import PARAM_NAMES

            data = [data.get(k) for k in PARAM_NAMES]
    try:
        theta = [float(v) for v in data]
    except (TypeError, ValueError):
        theta = []
    if len(theta) != 10:
        raise CochleaAIError(f"{p} holds no 10 cochlea shape parameters; give the truth.json of a "
                             "phantom or the fitted-shape JSON of the segmentation module.")
    return theta


def _cmd_simulate(args) -> int:
    from .. import io
    from ..errors import CochleaAIError
    from ..progress import tqdm_progress
    from .simulation import ScanConfig, simulate_postop

    preop = io.read_volume(args.preop)
    model_path = args.model
    if model_path is None:
        guess = Path(args.preop).parent / "truth.json"
        if not guess.is_file():
            raise CochleaAIError("No cochlea model: pass --model (the phantom's truth.json or the fitted "
                                 "shape JSON of CochleaShapeSegmentation).")
        model_path = guess
    theta = load_model_parameters(model_path)
    config = ScanConfig(kvp=args.kvp, noise=not args.no_noise, scatter=not args.no_scatter)
    with tqdm_progress("simulate-ci", disable=args.quiet) as progress:
        sim = simulate_postop(preop, theta, args.array, args.depth, seed=args.seed, config=config,
                              progress=progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"postop": io.write_volume(sim.postop, out / "postop.nrrd"),
             "metal": io.write_seg_nrrd(out / "metal.seg.nrrd", sim.metal_segments(), sim.metal),
             "contacts": io.write_markups_json(out / "contacts.mrk.json", sim.contacts_markups()),
             "target": io.write_volume(sim.target, out / "target.nrrd")}
    summary = sim.summary()
    summary["files"] = {k: str(v) for k, v in files.items()}
    summary["warnings"] = sim.warnings
    (out / "simulation.json").write_text(json.dumps(summary, indent=2))
    if not args.quiet:
        print(json.dumps(summary, indent=2))
    return 0


def _cmd_mar(args) -> int:
    from .. import io
    from ..progress import tqdm_progress
    from .contacts import detect_contacts
    from .mar import default_method, reduce_metal_artifacts

    if args.method is None:
        args.method = "margan" if args.model else default_method()
    refiner = "shipped"
    if str(args.contact_refiner).lower() == "none":
        refiner = None
    elif args.contacts and args.contact_refiner != "shipped":
        from .contact_refiner import load_refiner

        refiner = load_refiner(args.contact_refiner)      # a bad file stops before any work
    post = io.read_volume(args.postop)
    with tqdm_progress(f"mar {args.method}", disable=args.quiet) as progress:
        res = reduce_metal_artifacts(post, args.method, args.threshold, progress=progress, model=args.model,
                                     keep_metal=True if args.keep_metal else None)
    out = Path(args.out)
    io.write_volume(res.image.rounded_int16(), out)
    summary = {"method": res.method, "metal_voxels": int(res.metal_mask.sum()), "seconds": round(res.seconds, 2),
               "messages": res.messages, "output": str(out)}
    if args.contacts:
        contacts = detect_contacts(post, res.metal_mask, max_contacts=args.max_contacts, array=args.array,
                                   refiner=refiner)
        summary["contacts"] = str(io.write_markups_json(args.contacts, contacts))
        summary["n_contacts"] = len(contacts)
    if not args.quiet:
        print(json.dumps(summary, indent=2))
    return 0


def _cmd_simulate_pairs(args) -> int:
    from .. import batch
    from ..progress import tqdm_progress
    from .pairs import simulate_pairs

    ids = tuple(i.strip() for i in args.real_ids.split(",") if i.strip())
    with tqdm_progress("simulate-pairs", disable=args.quiet) as progress:
        summary = simulate_pairs(args.out, args.n, args.seed, args.real, ids, args.augmented,
                                 progress=progress, **batch.options(args))
    print(json.dumps(summary, indent=2))
    return 1 if summary["pairs"] == 0 else 0


def _cmd_contacts_train(args) -> int:
    from ..progress import tqdm_progress
    from .contact_refiner import train_refiner

    with tqdm_progress("contacts-train", disable=args.quiet) as progress:
        summary = train_refiner(args.pairs, args.out, args.ridge, progress=progress, description=args.description)
    print(json.dumps(summary, indent=2))
    return 0


def add_commands(subparsers) -> None:
    from .electrodes import ARRAYS, DEFAULT_ARRAY
    from .mar import DEFAULT_THRESHOLD_HU, METHODS

    p = subparsers.add_parser(
        "simulate-ci", help="simulate a cochlear-implant CT from a pre-operative volume (X-ray physics)",
        description="Insert an electrode array along the scala tympani of the cochlea model and simulate "
                    "the post-operative CT (polychromatic fan beam, scatter, noise, FBP). Writes postop.nrrd, "
                    "metal.seg.nrrd, contacts.mrk.json (numbered from the apex, angular depth as "
                    "description), target.nrrd (pre-op with contact centres marked) and simulation.json.")
    p.add_argument("preop", help="pre-operative CT volume in HU (e.g. ct.nrrd of `cochleaai phantom`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None,
                   help="JSON with the 10 cochlea shape parameters (default: truth.json beside PREOP)")
    p.add_argument("--array", default=DEFAULT_ARRAY, choices=sorted(ARRAYS), help="electrode array")
    p.add_argument("--depth", type=float, default=None,
                   help="angular insertion depth of the tip in degrees (default: random, typical range)")
    p.add_argument("--seed", type=int, default=0, help="seed of depth, scatter and noise (default 0)")
    p.add_argument("--kvp", type=int, default=120, choices=(120, 140))
    p.add_argument("--no-noise", action="store_true", help="no quantum or electronic noise")
    p.add_argument("--no-scatter", action="store_true", help="no scatter")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_simulate)

    from .. import batch
    from .pairs import TRAIN_SPECIMENS

    p = subparsers.add_parser(
        "simulate-pairs", help="simulate a training set of pre-op / post-op pairs for MARGAN",
        description="Each pair (pair_NNNNN/): preop.nrrd (the target: the same simulated scanner without "
                    "metal), postop.nrrd (the input, with an implant), metal.nrrd, contacts.mrk.json, "
                    "pair.json (source, array, depth, scanner settings) and, with --augmented, "
                    "target_augmented.nrrd (contact centres marked). manifest.csv and manifest.json list "
                    "the set; every pair has its own seed, so the same --seed gives the same set and an "
                    "interrupted run resumes.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, required=True, help="number of pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the set (default 0)")
    p.add_argument("--real", default=None, metavar="DIR",
                   help="also use real pre-op CTs from this folder (layout of the Wimmer 2019 data set)")
    p.add_argument("--real-ids", default=",".join(TRAIN_SPECIMENS),
                   help=f"specimens of --real to train on (default {','.join(TRAIN_SPECIMENS)}; keep the "
                        "others for evaluation)")
    p.add_argument("--augmented", action="store_true", help="also write the target with contact centres marked")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_arguments(p)
    p.set_defaults(func=_cmd_simulate_pairs)

    from .contact_refiner import RIDGE

    p = subparsers.add_parser(
        "contacts-train", help="train the sub-voxel refinement of electrode contacts on simulated pairs",
        description="Detect the contacts in every post-op scan of a set written by simulate-pairs, and fit "
                    "the ridge regression from the metal around each detection to its true contact. "
                    "Writes OUT.npz and its card OUT.json (the shipped model is "
                    "Resources/Models/contact_refiner).")
    p.add_argument("--pairs", required=True, help="folder of simulate-pairs")
    p.add_argument("--out", required=True, help="model path (stem, .npz or .json)")
    p.add_argument("--ridge", type=float, default=RIDGE, help=f"ridge penalty (default {RIDGE:g})")
    p.add_argument("--description", default="", help="text for the model card")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_contacts_train)

    p = subparsers.add_parser(
        "mar", help="reduce metal artifacts in a post-operative CT (MARGAN, NMAR, LI, BHC)",
        description="Metal artifact reduction from the image alone: "
                    + "; ".join(f"{k}: {v}" for k, v in METHODS.items())
                    + ". Default: margan when its model is installed, else nmar. Without metal the "
                      "volume is returned unchanged.")
    p.add_argument("postop", help="post-operative CT volume in HU")
    p.add_argument("--out", required=True, help="output volume file (.nrrd, .nii.gz)")
    p.add_argument("--method", default=None, choices=sorted(METHODS),
                   help="default: margan when its model is installed, else nmar")
    p.add_argument("--model", default=None, help="MARGAN model (.pt with its .json card; default: the shipped one)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD_HU, help="metal threshold in HU")
    p.add_argument("--keep-metal", action="store_true",
                   help="copy the segmented metal back into the output (MARGAN's output is metal-free "
                        "by default; the sinogram methods always keep it)")
    p.add_argument("--contacts", default=None, help="also write detected contacts to this .mrk.json")
    p.add_argument("--max-contacts", type=int, default=None, help="at most this many contacts")
    p.add_argument("--array", default=None, choices=sorted(ARRAYS),
                   help="the implanted array: its contacts are set at its pitch along the metal "
                        "(fine-pitch arrays), its count caps the contacts found")
    p.add_argument("--contact-refiner", default="shipped", metavar="MODEL",
                   help="sub-voxel refinement of the contacts: 'shipped' (default), a model of "
                        "contacts-train (.npz with its card), or 'none' (a geometric correction only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_mar)
