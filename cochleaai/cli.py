"""Command line: ``python -m cochleaai <command>`` (also installed as ``cochleaai``).

Every command has ``--help``. Long commands draw a progress bar on stderr; Ctrl-C stops
them cleanly (status 130). Errors the user can fix print one sentence and exit with status 2;
a batch command whose items failed exits with status 3 (:mod:`cochleaai.errors`).
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points

import numpy as np

from cochleaai import __version__, arguments, bench, io, worker
from cochleaai.arguments import Parser, add_force
from cochleaai.contacts import cli as contacts_cli
from cochleaai.errors import EXIT_CANCELLED, EXIT_USER_ERROR, CochleaAIError
from cochleaai.io.models import write_vtk_model
from cochleaai.io.outputs import OutputPlan, write_text_whole
from cochleaai.landmarks import cli as landmarks_cli
from cochleaai.mar import cli as mar_cli
from cochleaai.mar.margan import cli as margan_cli
from cochleaai.planning import cli as planning_cli
from cochleaai.markups import Markups
from cochleaai.phantom.core import Phantom, make_phantom
from cochleaai.progress import PROGRESS_STYLES, Cancelled, set_progress_style, tqdm_progress
from cochleaai.segmentation import cli as segmentation_cli
from cochleaai.shape import PARAM_NAMES, CochleaModel, default_params
from cochleaai.simulation import cli as simulation_cli
from cochleaai.vae import cli as vae_cli

#: The files of ``shape``.
SHAPE_FILES = ("cochlea_shape.vtk", "scala_tympani_centerline.mrk.json", "landmarks.mrk.json", "shape.json")


def _cmd_phantom(args) -> int:
    OutputPlan(force=args.force).folder(args.out, Phantom.FILES)
    with tqdm_progress("phantom", disable=args.quiet) as progress:
        phantom = make_phantom(seed=args.seed, fov=args.fov, progress=progress, labyrinth=args.labyrinth)
        files = phantom.save(args.out)
    if not args.quiet:
        print(json.dumps({k: str(v) for k, v in files.items()}, indent=2))
    return 0


def _cmd_shape(args) -> int:
    theta = default_params()
    for k, name in enumerate(PARAM_NAMES):
        value = getattr(args, name)
        if value is not None:
            theta[k] = value
    out = OutputPlan(force=args.force).folder(args.out, SHAPE_FILES)
    model = CochleaModel(theta)
    write_vtk_model(model.mesh(args.edge), out / "cochlea_shape.vtk")
    n = 90
    io.write_markups_json(out / "scala_tympani_centerline.mrk.json", model.centerline_markups(n))
    lm = model.landmarks()
    io.write_markups_json(out / "landmarks.mrk.json",
                          Markups(np.stack(list(lm.values())), list(lm), name="Cochlea landmarks"))
    summary = {"parameters": model.as_dict(),
               "cochlear_duct_length_mm": model.duct_length(),
               "scala_tympani_length_mm": model.duct_length("scala_tympani"),
               "turns": model.turns,
               "extent_mm": model.extent_mm().round(3).tolist()}
    write_text_whole(out / "shape.json", json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_bench(args) -> int:
    if args.json:
        bench.check_figures_file(args.json)
    fn, _ = bench.registry()[args.name]
    # the benchmark's own options only (its parser refused the others); unset ones keep run's defaults
    own = {bench.dest(flag, kwargs): getattr(args, bench.dest(flag, kwargs))
           for flag, kwargs in bench.options(args.name)}
    with tqdm_progress(f"bench {args.name}", disable=args.quiet) as progress:
        figures = fn(quick=args.quick, tiny=args.tiny, seed=args.seed, progress=progress, out_dir=args.out_dir,
                     **{k: v for k, v in own.items() if v is not None})
    print(bench.format_table(args.name, figures))
    if args.json:
        print(f"figures written to {bench.write_json(args.json, args.name, figures)}")
    return 0


class _BenchmarkParser(Parser):
    """One benchmark's parser: an option it does not declare is refused here, naming the
    benchmark, instead of reaching a benchmark that would not know it."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)} (see {self.prog} --help)")
        return namespace, extras


def _add_bench_parser(sub) -> None:
    """``bench <name>``: one parser per benchmark, with the common options and its own."""
    benchmarks = bench.registry()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", help="write the figures to this JSON file")
    common.add_argument("--quick", action="store_true", help="a shorter run (fewer repeats / samples)")
    common.add_argument("--tiny", action="store_true",
                        help="the same code on the smallest work, in seconds: a smoke test whose figures "
                             "mean nothing (overrides --quick)")
    common.add_argument("--seed", type=arguments.seed, default=0)
    common.add_argument("--out-dir", default=None, help="folder for pictures the benchmark draws")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("bench", help="run a benchmark and print its figures",
                       description="Run a benchmark and print its figures; "
                                   "'cochleaai bench <name> --help' lists its options.")
    names = p.add_subparsers(dest="name", required=True, metavar="<name>", parser_class=_BenchmarkParser)
    for name in sorted(benchmarks):
        description = benchmarks[name][1]
        q = names.add_parser(name, parents=[common], help=description, description=description)
        for flag, kwargs in bench.options(name):
            q.add_argument(flag, **kwargs)
    p.set_defaults(func=_cmd_bench)


#: Each method package owns its commands: ``add_commands(subparsers)`` in its ``cli`` module
#: registers parsers whose ``func(args) -> int`` does the work.
METHOD_COMMANDS = (segmentation_cli, simulation_cli, mar_cli, contacts_cli, landmarks_cli, vae_cli, margan_cli,
                   planning_cli, worker)
#: Commands of layers above the core (the MRML demo of :mod:`cochleaai.slicer`) register
#: themselves under this entry-point group, so that the core never imports them.
PLUGIN_GROUP = "cochleaai.commands"


def plugin_commands() -> list:
    """The ``add_commands`` functions that installed packages declare in :data:`PLUGIN_GROUP`."""
    found = entry_points()
    # Python 3.9 (Slicer 5.8) gives a {group: entry points} dict, without select() or entry_points(group=)
    found = found.select(group=PLUGIN_GROUP) if hasattr(found, "select") else found.get(PLUGIN_GROUP, ())
    return [entry.load() for entry in sorted(found, key=lambda e: e.name)]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cochleaai", description="CochleaAI: generative learning for inner-ear CT.")
    parser.add_argument("--version", action="version", version=f"cochleaai {__version__}")
    parser.add_argument("--progress", choices=PROGRESS_STYLES, default="bar",
                        help="how long commands report progress on stderr: a bar (default), one JSON "
                             "object per line for a program that runs this one "
                             '({"cochleaai_progress": fraction, "message": text}), or nothing')
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("phantom", help="write a synthetic temporal-bone CT with its ground truth",
                       description="Write ct.nrrd (int16 HU), labels.seg.nrrd, landmarks.mrk.json and truth.json.")
    p.add_argument("--seed", type=arguments.seed, default=0, help="random seed (default 0)")
    p.add_argument("--fov", choices=("roi", "temporal"), default="roi",
                   help="roi: 60x50x50 voxels at 0.2 mm around the cochlea; temporal: a wide field of view")
    p.add_argument("--labyrinth", choices=("fluid", "air"), default="fluid",
                   help="fluid-filled (as in patients, default) or air-filled (a drained cadaver specimen)")
    p.add_argument("--out", required=True, help="output folder")
    add_force(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_phantom)

    p = sub.add_parser("shape", help="write the cochlea shape model surface, centreline and measures",
                       description="Write cochlea_shape.vtk (LPS), scala_tympani_centerline.mrk.json, "
                                   "landmarks.mrk.json and shape.json for given parameters "
                                   "(default: the thesis initial shape at the origin).")
    for name in PARAM_NAMES:
        p.add_argument(f"--{name}", type=arguments.finite, default=None)
    p.add_argument("--edge", type=arguments.real(minimum=0.02, maximum=2.0), default=0.15,
                   help="mesh edge length in mm, 0.02 to 2 (default 0.15)")
    p.add_argument("--out", required=True, help="output folder")
    add_force(p)
    p.set_defaults(func=_cmd_shape)

    _add_bench_parser(sub)

    for add_commands in [module.add_commands for module in METHOD_COMMANDS] + plugin_commands():
        add_commands(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    set_progress_style(args.progress)
    try:
        return int(args.func(args) or 0)
    except CochleaAIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print("error: not enough memory for this input; try a smaller volume or crop it first.", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:          # the disk filled up or a file vanished while it ran
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; nothing half-written was left.", file=sys.stderr)
        return EXIT_USER_ERROR
    except (Cancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
