"""The ``plan`` command: from a CT and the cochlea's points to a cochlear-implant plan; the
``postop`` command: the implanted contacts' angles and frequencies from the post-operative CT."""
from __future__ import annotations

import json
import sys

from cochleaai import arguments, io
from cochleaai.arguments import add_force
from cochleaai.errors import EXIT_FLAGGED, CochleaAIError
from cochleaai.io.browser import find_browser, print_pdf
from cochleaai.io.outputs import OutputPlan, write_text_whole
from cochleaai.planning import catalogue
from cochleaai.planning.interval_calibration import CALIBRATION_FIRST_SEED, CALIBRATION_PHANTOMS, calibrate_intervals
from cochleaai.planning.interval_scale import resolve_interval_scale
from cochleaai.planning.plan import DEFAULT_SAMPLES, DEFAULT_TARGET_COVERAGE, plan_from_segmentation
from cochleaai.planning.postop import contacts_of, map_points, postop_html, postop_report, register_preop_to_postop
from cochleaai.planning.report import write_report
from cochleaai.progress import tqdm_progress
from cochleaai.segmentation.cli import read_points
from cochleaai.segmentation.config import SMOKE_FIT, SegmentConfig
from cochleaai.segmentation.pipeline import segment

#: The files of one plan (and plan.pdf with --pdf).
PLAN_FILES = ("plan.json", "plan.html")
#: The files of one post-operative report (and postop.pdf with --pdf).
POSTOP_FILES = ("postop.json", "postop.html")


def _report_files(names, pdf: bool):
    """The files a report command writes; with ``pdf``, the page's PDF too."""
    page = next(n for n in names if n.endswith(".html"))
    return tuple(names) + ((page[:-len(".html")] + ".pdf",) if pdf else ())


def _cmd_plan(args) -> int:
    arrays = [catalogue.get(a).key for a in args.arrays] if args.arrays else None   # refused before the fit
    resolve_interval_scale()                                # a damaged table too
    browser = find_browser() if args.pdf else None          # and a PDF without Chromium
    files = _report_files(PLAN_FILES, args.pdf)
    out = OutputPlan([args.input, args.points], args.force).folder(args.out, files)
    points = read_points(args.points)
    with tqdm_progress("plan", disable=args.quiet) as progress:
        result = segment(io.read_volume(args.input), points, SegmentConfig(side=args.side, seed=args.seed),
                         progress.stage(0.0, 0.8))
        plan = plan_from_segmentation(result, arrays=arrays, target_coverage=args.target_coverage,
                                      samples=args.samples, seed=args.seed, progress=progress.stage(0.8, 0.95))
        record = dict(plan.to_dict(), input=str(args.input), theta=result.theta.tolist(),
                      segmentation_seconds=round(result.seconds, 2))
        write_text_whole(out / "plan.json", json.dumps(record, indent=2))
        write_report(out / "plan.html", record, result.theta, subject=f"CT: {args.input}")
        if browser:
            progress(0.97, "printing plan.pdf")
            print_pdf(out / "plan.html", out / "plan.pdf", browser)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    ranked = [{"array": a.array.key, "apical_deg": round(a.apical_deg["mean"], 1),
               "apical_deg_sd": round(a.apical_deg["sd"], 1), "coverage_pct": round(a.coverage_pct["mean"], 1)}
              for a in plan.arrays]
    print(json.dumps({"files": {n: str(out / n) for n in files}, "ranked": ranked}, indent=2))
    return EXIT_FLAGGED if plan.warnings else 0


def _cmd_postop(args) -> int:
    array = catalogue.get(args.array).key if args.array else None    # refused before any work
    scale = resolve_interval_scale()
    browser = find_browser() if args.pdf else None
    if args.preop is None and args.points is None:
        raise CochleaAIError("Without --preop the cochlea is fitted on the post-operative CT: give its center, "
                             "apex and round window points there with --points.")
    inputs = [args.postop, args.contacts, args.preop, args.points]
    files = _report_files(POSTOP_FILES, args.pdf)
    out = OutputPlan(inputs, args.force).folder(args.out, files)
    contacts, numbered = contacts_of(io.read_markups(args.contacts))
    points = read_points(args.points) if args.points else None
    postop = io.read_volume(args.postop)
    fitted_on, frame, moved = postop, contacts, None
    with tqdm_progress("postop", disable=args.quiet) as progress:
        if args.preop:
            fitted_on = io.read_volume(args.preop)
            progress(0.0, "registering the pre-operative CT")
            t = register_preop_to_postop(fitted_on, postop, around_lps=contacts.mean(axis=0), seed=args.seed)
            frame = map_points(t, contacts)
            moved = {"maps": "post-operative LPS points to pre-operative LPS points", "matrix": list(t.GetMatrix()),
                     "center": list(t.GetCenter()), "translation": list(t.GetTranslation())}
        result = segment(fitted_on, points, SegmentConfig(side=args.side, seed=args.seed), progress.stage(0.1, 0.9))
        report = postop_report(frame, numbered, result, array, args.samples, args.seed, interval_scale=scale)
    for row, p in zip(report["contacts"], contacts):
        row["postop_lps"] = p.tolist()
    record = dict(report, postop=str(args.postop), preop=None if args.preop is None else str(args.preop),
                  fitted_on="pre-operative CT" if args.preop else "post-operative CT", theta=result.theta.tolist(),
                  transform=moved)
    write_text_whole(out / "postop.json", json.dumps(record, indent=2))
    write_text_whole(out / "postop.html", postop_html(record, subject=f"Post-operative CT: {args.postop}"))
    if browser:
        print_pdf(out / "postop.html", out / "postop.pdf", browser)
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    depth = report["insertion_depth_deg"]
    print(json.dumps({"files": {n: str(out / n) for n in files}, "numbered": numbered,
                      "insertion_depth_deg": round(depth["mean"], 1), "insertion_depth_sd": round(depth["sd"], 1)},
                     indent=2))
    return EXIT_FLAGGED if report["warnings"] else 0


def _cmd_calibrate_plan(args) -> int:
    OutputPlan([], args.force).file(args.out)
    fit = SMOKE_FIT if args.tiny else {}
    with tqdm_progress("calibrate-plan", disable=args.quiet) as progress:
        table = calibrate_intervals(args.first_seed, args.phantoms, fit=fit, progress=progress)
    out = write_text_whole(args.out, json.dumps(table, indent=1))
    print(json.dumps({"out": str(out), "scale": table["scale"], "measure_factors": table["measure_factors"],
                      "figures": table["figures"],
                      "coverage_at_scale_1": round(table["coverage_at_scale_1"], 3)}, indent=1))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("plan", help="cochlear-implant plan: every catalogue array in the fitted cochlea, "
                                    "with error bars",
                       description="Segment the cochlea from its points, insert every array of the catalogue "
                                   "fully along the path of its position, and write plan.json and a "
                                   "self-contained plan.html: the depth of each contact, the coverage of the "
                                   "organ of Corti and each contact's frequency, with 95-percent intervals from the "
                                   "shape posterior widened by the calibrated scale of calibrate-plan. Known "
                                   "arrays: " + catalogue.known())
    p.add_argument("input", help="the CT volume (NRRD, NIfTI, DICOM folder)")
    p.add_argument("--points", required=True, help="markups file with points labelled center, apex, round window")
    p.add_argument("--side", choices=("right", "left"), required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--target-coverage", type=arguments.real(minimum=0.05, maximum=1.0),
                   default=DEFAULT_TARGET_COVERAGE,
                   help=f"share of the organ of Corti to cover, ranks the arrays (default {DEFAULT_TARGET_COVERAGE}; "
                        "deeper for full coverage, shallower to spare apical residual hearing)")
    p.add_argument("--arrays", nargs="+", default=None, help="plan only these arrays (keys or names)")
    p.add_argument("--samples", type=arguments.integer(minimum=10, maximum=5000), default=DEFAULT_SAMPLES,
                   help="posterior draws for the error bars")
    p.add_argument("--seed", type=arguments.seed, default=0)
    p.add_argument("--pdf", action="store_true",
                   help="also print the page to a PDF with headless Chromium (checked before any work)")
    add_force(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("postop", help="post-operative report: each implanted contact's angle and frequency",
                       description="Fit the cochlea (on the pre-operative CT when given, registered rigidly to "
                                   "the post-operative one; else on the post-operative CT) and write postop.json "
                                   "and a self-contained postop.html: each contact's angle from the round window, "
                                   "its place on the organ of Corti and its frequencies, the angular insertion "
                                   "depth, with 95-percent intervals from the fit's posterior. Contacts labelled E1 "
                                   "(apex) ... EN are numbered; others get positions only. Known arrays: "
                                   + catalogue.known())
    p.add_argument("postop", help="the post-operative CT volume (NRRD, NIfTI, DICOM folder)")
    p.add_argument("--contacts", required=True,
                   help="the contacts in the post-operative CT (.mrk.json of mar --contacts)")
    p.add_argument("--side", choices=("right", "left"), required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--preop", default=None, help="the pre-operative CT: the cochlea is fitted there, without metal")
    p.add_argument("--points", default=None,
                   help="markups with points labelled center, apex, round window: on the pre-operative CT when "
                        "given, else on the post-operative one (needed there)")
    p.add_argument("--array", default=None,
                   help="the implanted array (key or name), for the manufacturer's contact numbers")
    p.add_argument("--samples", type=arguments.integer(minimum=10, maximum=5000), default=DEFAULT_SAMPLES,
                   help="posterior draws for the error bars")
    p.add_argument("--seed", type=arguments.seed, default=0)
    p.add_argument("--pdf", action="store_true",
                   help="also print the page to a PDF with headless Chromium (checked before any work)")
    add_force(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_postop)

    p = sub.add_parser("calibrate-plan", help="set the plan's interval scale on phantoms (the shipped table)",
                       description="Segments roi phantoms from their true points, plans every catalogue array "
                                   "with the fit's posterior alone, and writes the split-conformal scale on the "
                                   "posterior that makes 95 in 100 of the intervals of depth, coverage and duct "
                                   "length hold the truth, then each duct length's own factor on its interval at "
                                   "that scale (shipped as Resources/plan-intervals.json).")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--first-seed", type=arguments.seed, default=CALIBRATION_FIRST_SEED,
                   help=f"seed of the first phantom (default {CALIBRATION_FIRST_SEED}; bench plan uses 0 onwards)")
    p.add_argument("--phantoms", type=arguments.integer(minimum=1, maximum=1000), default=CALIBRATION_PHANTOMS,
                   help=f"how many phantoms (default {CALIBRATION_PHANTOMS})")
    p.add_argument("--tiny", action="store_true", help="short fits: a smoke test whose scale means nothing")
    add_force(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_calibrate_plan)
