"""Commands of ``cochleaai.contacts``: ``contacts-train``."""
from __future__ import annotations

import json

from cochleaai import arguments
from cochleaai.arguments import add_force
from cochleaai.contacts.refiner import RIDGE
from cochleaai.contacts.training import train_refiner
from cochleaai.io.outputs import OutputPlan
from cochleaai.model_files import model_paths
from cochleaai.progress import tqdm_progress


def _cmd_contacts_train(args) -> int:
    OutputPlan([args.pairs], args.force).files(model_paths(args.out, ".npz"), "model file")
    with tqdm_progress("contacts-train", disable=args.quiet) as progress:
        summary = train_refiner(args.pairs, args.out, args.ridge, progress=progress, description=args.description)
    print(json.dumps(summary, indent=2))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "contacts-train", help="train the sub-voxel refinement of electrode contacts on simulated pairs",
        description="Detect the contacts in every post-op scan of a set written by simulate-pairs, and fit "
                    "the ridge regression from the metal around each detection to its true contact. "
                    "Writes OUT.npz and its card OUT.json (the shipped model is "
                    "Resources/Models/contact_refiner).")
    p.add_argument("--pairs", required=True, help="folder of simulate-pairs")
    p.add_argument("--out", required=True, help="model path (stem, .npz or .json)")
    add_force(p)
    p.add_argument("--ridge", type=arguments.non_negative, default=RIDGE, help=f"ridge penalty (default {RIDGE:g})")
    p.add_argument("--description", default="", help="text for the model card")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_contacts_train)
