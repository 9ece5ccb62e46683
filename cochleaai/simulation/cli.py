"""Commands of ``cochleaai.simulation``: ``simulate-ci`` and ``simulate-pairs``."""
from __future__ import annotations

import json
from pathlib import Path

from cochleaai import arguments, batch, io
from cochleaai.arguments import add_force
from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import OutputPlan, write_text_whole
from cochleaai.progress import tqdm_progress
from cochleaai.shape.params import theta_from_record
from cochleaai.simulation.arrays import ARRAYS, DEFAULT_ARRAY
from cochleaai.simulation.ct import ARTIFACT_MODE, ARTIFACT_MODES, ScanConfig, simulate_postop
from cochleaai.simulation.pairs import PAIR_ARTIFACT_MODE, TRAIN_SPECIMENS, simulate_pairs


def load_model_parameters(path) -> "list":
    """Ten cochlea shape parameters (LPS pose) from a JSON file: the phantom's ``truth.json``
    (key ``theta``), a fitted-shape file with ``theta`` or ``parameters``, or a bare list."""
    p = Path(path)
    if not p.is_file():
        raise CochleaAIError(f"The cochlea model file {p} does not exist.")
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise CochleaAIError(f"The cochlea model file {p} is not valid JSON ({exc}).") from None
    if isinstance(data, dict):
        data = data.get("theta", data.get("parameters"))
    return theta_from_record(data, str(p), "give the truth.json of a phantom or the fitted-shape JSON of "
                                           "the segmentation module.")


#: The files of ``simulate-ci``, by kind.
SIMULATION_FILES = {"postop": "postop.nrrd", "metal": "metal.seg.nrrd", "contacts": "contacts.mrk.json",
                    "target": "target.nrrd", "clean": "simulated_without_implant.nrrd",
                    "summary": "simulation.json"}


def _cmd_simulate(args) -> int:
    model_path = args.model
    if model_path is None:
        guess = Path(args.preop).parent / "truth.json"
        if not guess.is_file():
            raise CochleaAIError("No cochlea model: pass --model (the phantom's truth.json or the fitted "
                                 "shape JSON of CochleaShapeSegmentation).")
        model_path = guess
    out = OutputPlan([args.preop, model_path], args.force).folder(args.out, SIMULATION_FILES.values())
    preop = io.read_volume(args.preop)
    theta = load_model_parameters(model_path)
    config = ScanConfig(kvp=args.kvp, noise=not args.no_noise, scatter=not args.no_scatter)
    with tqdm_progress("simulate-ci", disable=args.quiet) as progress:
        sim = simulate_postop(preop, theta, args.array, args.depth, seed=args.seed, config=config,
                              progress=progress, artifact_mode=args.artifact_mode)
    name = SIMULATION_FILES
    files = {"postop": io.write_volume(sim.postop, out / name["postop"]),
             "metal": io.write_seg_nrrd(out / name["metal"], sim.metal_segments(), sim.metal),
             "contacts": io.write_markups_json(out / name["contacts"], sim.contacts_markups()),
             "target": io.write_volume(sim.target, out / name["target"]),
             "clean": io.write_volume(sim.clean, out / name["clean"])}
    summary = sim.summary()
    summary["files"] = {k: str(v) for k, v in files.items()}
    summary["warnings"] = sim.warnings
    write_text_whole(out / name["summary"], json.dumps(summary, indent=2))
    if not args.quiet:
        print(json.dumps(summary, indent=2))
    return 0


def _cmd_simulate_pairs(args) -> int:
    OutputPlan([args.real]).folder(args.out, ())      # a resumable set: pairs already there are kept
    ids = tuple(i.strip() for i in args.real_ids.split(",") if i.strip())
    with tqdm_progress("simulate-pairs", disable=args.quiet) as progress:
        summary = simulate_pairs(args.out, args.n, args.seed, args.real, ids, args.augmented,
                                 progress=progress, artifact_mode=args.artifact_mode, **batch.options(args))
    print(json.dumps(summary, indent=2))
    return 1 if summary["pairs"] == 0 else 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate-ci", help="simulate a cochlear-implant CT from a pre-operative volume (X-ray physics)",
        description="Insert an electrode array along the scala tympani of the cochlea model and simulate "
                    "the post-operative CT (polychromatic fan beam, scatter, noise, FBP). Writes postop.nrrd, "
                    "metal.seg.nrrd, contacts.mrk.json (numbered from the apex, angular depth as "
                    "description), target.nrrd (pre-op with contact centres marked), "
                    "simulated_without_implant.nrrd (the same simulated scan without the implant: "
                    "postop = pre-op + simulated scan with the implant - this one, by default) and "
                    "simulation.json.")
    p.add_argument("preop", help="pre-operative CT volume in HU (e.g. ct.nrrd of `cochleaai phantom`)")
    p.add_argument("--out", required=True, help="output folder")
    add_force(p)
    p.add_argument("--model", default=None,
                   help="JSON with the 10 cochlea shape parameters (default: truth.json beside PREOP)")
    p.add_argument("--array", default=DEFAULT_ARRAY, choices=sorted(ARRAYS), help="electrode array")
    p.add_argument("--depth", type=arguments.real(minimum=0.0, maximum=1080.0), default=None,
                   help="angular insertion depth of the tip in degrees (default: random, typical range)")
    p.add_argument("--seed", type=arguments.seed, default=0, help="seed of depth, scatter and noise (default 0)")
    p.add_argument("--kvp", type=int, default=120, choices=(120, 140))
    p.add_argument("--no-noise", action="store_true", help="no quantum or electronic noise")
    p.add_argument("--no-scatter", action="store_true", help="no scatter")
    p.add_argument("--artifact-mode", choices=ARTIFACT_MODES, default=ARTIFACT_MODE,
                   help="injected (default): the pre-op with the simulated artifact added, so the image keeps "
                        "its own resolution and noise away from the metal; simulated: the simulated scan itself")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_simulate)

    p = subparsers.add_parser(
        "simulate-pairs", help="simulate a training set of pre-op / post-op pairs for MARGAN",
        description="Each pair (pair_NNNNN/): preop.nrrd (the target: the anatomy itself, or with "
                    "--artifact-mode simulated the same simulated scanner without metal), postop.nrrd (the input, "
                    "with an implant), metal.nrrd, contacts.mrk.json, "
                    "pair.json (source, array, depth, scanner settings) and, with --augmented, "
                    "target_augmented.nrrd (contact centres marked). manifest.csv and manifest.json list "
                    "the set; every pair has its own seed, so the same --seed gives the same set and an "
                    "interrupted run resumes.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=arguments.integer(1, 100000), required=True, help="number of pairs")
    p.add_argument("--seed", type=arguments.seed, default=0, help="seed of the set (default 0)")
    p.add_argument("--real", default=None, metavar="DIR",
                   help="also use real pre-op CTs from this folder (layout of the Wimmer 2019 data set)")
    p.add_argument("--real-ids", default=",".join(TRAIN_SPECIMENS),
                   help=f"specimens of --real to train on (default {','.join(TRAIN_SPECIMENS)}; keep the "
                        "others for evaluation)")
    p.add_argument("--augmented", action="store_true", help="also write the target with contact centres marked")
    p.add_argument("--artifact-mode", choices=ARTIFACT_MODES, default=PAIR_ARTIFACT_MODE,
                   help="injected (default, the shipped MARGAN's pairs): the target is the anatomy itself and "
                        "the input the anatomy plus the simulated artifact; simulated: the target is the "
                        "simulated scan without the implant and the input the simulated scan with it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_arguments(p)
    p.set_defaults(func=_cmd_simulate_pairs)
