"""The ``demo`` command, registered with the core's command line through the
``cochleaai.commands`` entry point (pyproject.toml)."""
from __future__ import annotations

import json

from cochleaai import arguments
from cochleaai.arguments import add_force
from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import OutputPlan
from cochleaai.progress import tqdm_progress
from cochleaai.slicer.demo.scene import SCENE_NAME, run


def _cmd_demo(args) -> int:
    out = OutputPlan().folder(args.out, ())
    earlier_demo = (out / "scene" / f"{SCENE_NAME}.mrml").is_file()
    if out.is_dir() and any(out.iterdir()) and not (earlier_demo or args.force):
        raise CochleaAIError(f"'{out}' holds files of something else than the demo; choose a new or empty "
                             "folder, or pass --force to write the demo into it.")
    with tqdm_progress("demo", disable=args.quiet) as progress:
        summary = run(args.out, seed=args.seed, fov=args.fov, progress=progress)
    print(json.dumps(summary, indent=2))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the main job on the built-in phantom (make demo)",
                              description="Generate a phantom, load it into a real MRML scene, save the scene "
                                          "and a PNG of orthogonal slices with label contours.")
    p.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    add_force(p)
    p.add_argument("--seed", type=arguments.seed, default=0)
    p.add_argument("--fov", choices=("roi", "temporal"), default="temporal")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)
