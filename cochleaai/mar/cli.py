"""Commands of ``cochleaai.mar``: ``mar`` (MARGAN's training is ``margan train``, :mod:`.margan.cli`)."""
from __future__ import annotations

import json
from pathlib import Path

from cochleaai import arguments, io
from cochleaai.arguments import add_force
from cochleaai.contacts.detect import detect_contacts
from cochleaai.contacts.refiner import load_refiner
from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import OutputPlan
from cochleaai.io.paths import extension_of
from cochleaai.mar.dispatch import reduce_metal_artifacts
from cochleaai.mar.methods import DEFAULT_THRESHOLD_HU, METHODS, THRESHOLD_RANGE, default_method
from cochleaai.progress import tqdm_progress
from cochleaai.simulation.arrays import ARRAYS


def _cmd_mar(args) -> int:
    plan = OutputPlan([args.postop, args.model, args.contact_refiner], args.force)
    plan.file(args.out, "output volume")
    if args.contacts:
        if extension_of(args.contacts) != ".mrk.json":
            raise CochleaAIError(f"--contacts writes a markups file; give it a name ending in .mrk.json, "
                                 f"not '{Path(args.contacts).name}'.")
        if Path(args.contacts).resolve() == Path(args.out).resolve():
            raise CochleaAIError("--contacts and --out name the same file; give two names.")
        plan.file(args.contacts, "contacts file")
    if args.method is None:
        args.method = "margan" if args.model else default_method()
    refiner = "shipped"
    if str(args.contact_refiner).lower() == "none":
        refiner = None
    elif args.contacts and args.contact_refiner != "shipped":
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


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "mar", help="reduce metal artifacts in a post-operative CT (MARGAN, NMAR, LI, BHC)",
        description="Metal artifact reduction from the image alone: "
                    + "; ".join(f"{k}: {v}" for k, v in METHODS.items())
                    + ". Default: margan when its model is installed, else nmar. Without metal the "
                      "volume is returned unchanged.")
    p.add_argument("postop", help="post-operative CT volume in HU")
    p.add_argument("--out", required=True, help="output volume file (.nrrd, .nii.gz)")
    add_force(p)
    p.add_argument("--method", default=None, choices=sorted(METHODS),
                   help="default: margan when its model is installed, else nmar")
    p.add_argument("--model", default=None, help="MARGAN model (.pt with its .json card; default: the shipped one)")
    p.add_argument("--threshold", type=arguments.real(minimum=THRESHOLD_RANGE[0], maximum=THRESHOLD_RANGE[1]),
                   default=DEFAULT_THRESHOLD_HU, help="metal threshold (HU, or the grey value of metal in a scan not in HU)")
    p.add_argument("--keep-metal", action="store_true",
                   help="copy the segmented metal back into the output (MARGAN's output is metal-free "
                        "by default; the sinogram methods always keep it)")
    p.add_argument("--contacts", default=None, help="also write detected contacts to this .mrk.json")
    p.add_argument("--max-contacts", type=arguments.integer(1, 100), default=None,
                   help="at most this many contacts (1 to 100)")
    p.add_argument("--array", default=None, choices=sorted(ARRAYS),
                   help="the implanted array: its contacts are set at its pitch along the metal "
                        "(fine-pitch arrays), its count caps the contacts found")
    p.add_argument("--contact-refiner", default="shipped", metavar="MODEL",
                   help="sub-voxel refinement of the contacts: 'shipped' (default), a model of "
                        "contacts-train (.npz with its card), or 'none' (a geometric correction only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_mar)
