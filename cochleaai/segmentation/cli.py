"""``python -m cochleaai segment`` and ``segment-batch``."""
from __future__ import annotations

import importlib
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np

from cochleaai import arguments, batch, io
from cochleaai.arguments import add_force
from cochleaai.errors import EXIT_FLAGGED, CochleaAIError
from cochleaai.io.models import write_vtk_model
from cochleaai.io.outputs import OutputPlan, write_text_whole
from cochleaai.progress import tqdm_progress
from cochleaai.segmentation.calibration import calibrate
from cochleaai.segmentation.config import COCHLEA_ALONE_DEG, SegmentConfig
from cochleaai.segmentation.pipeline import segment
from cochleaai.segmentation.pose import parse_points
from cochleaai.segmentation.quality import suspect_reasons
from cochleaai.segments import Segment
from cochleaai.shape import ShapeFunction, default_params
from cochleaai.shape.mesh import arrays_to_polydata, surface_arrays
from cochleaai.shape.model import centerline_markups


def _settings(args):
    return SegmentConfig(side=args.side, l_ref_fit=args.l_ref_fit, l_ref_final=args.l_ref_final,
                         outer_iterations=args.iterations, samples=args.samples, seed=args.seed,
                         shape_step=args.shape_step, search_placement=not args.no_placement,
                         search_orientation=not args.no_orientation_search, n_params=args.parameters,
                         label_map=args.label_map, label_band_mm=args.label_band,
                         vestibule_wedge_deg=args.vestibule_wedge, any_orientation=args.any_orientation)


def read_points(path) -> dict:
    """Roles -> LPS points from a Slicer markups file (.mrk.json or .fcsv)."""
    path = Path(path)
    markups = io.read_markups(path)
    found = parse_points(markups.labels, markups.points)
    if not found:
        raise CochleaAIError(f"{path.name} has no control point labelled 'center', 'apex' or "
                             "'round window'.")
    return found


#: The files of one segmentation, by kind.
RESULT_FILES = {"labels": "labels.seg.nrrd", "probability": "probability.nrrd", "uncertainty": "uncertainty.nrrd",
                "shape": "shape.json", "centerline": "centerline.mrk.json", "surface": "cochlea_shape.vtk"}


def write_result(result, out) -> dict:
    """Write the files of one segmentation; returns {name: path}."""
    # segment values 1 and 2; they overlap, so the file packs them into two layers
    out = Path(out)
    files = {kind: out / name for kind, name in RESULT_FILES.items()}
    io.write_seg_nrrd(files["labels"],
                      [(Segment(1, "Cochlea", (0.89, 0.35, 0.30)), result.sroi.array > 0),
                       (Segment(2, "Cochlea shape model", (0.3, 0.6, 0.95)), result.ssi.array > 0)],
                      result.roi, side=result.side)
    io.write_volume(result.probability, files["probability"])
    io.write_volume(result.uncertainty, files["uncertainty"])
    write_text_whole(files["shape"], json.dumps(result.summary(), indent=2))
    points, degrees = result.scala_tympani_centerline(60)
    io.write_markups_json(files["centerline"], centerline_markups(points, degrees))
    write_vtk_model(result.mesh(0.15), files["surface"])
    return {k: str(v) for k, v in files.items()}


def _segment_one(path, out, settings, points=None, progress=None) -> dict:
    result = segment(io.read_volume(path), points, settings, progress)
    files = write_result(result, out)
    row = {"input": str(path), "output": str(out), "seconds": round(result.seconds, 2),
           "iterations": result.iterations, **result.quality}
    for name, stat in result.measures.items():
        row[name] = round(stat["mean"], 4)
        row.update({f"{name}_{k}": round(stat[k], 4) for k in ("std", "low", "high", "value")})
    return {"row": row, "files": files}


def _cmd_segment(args) -> int:
    OutputPlan([args.input, args.points], args.force).folder(args.out, RESULT_FILES.values())
    points = read_points(args.points) if args.points else None
    with tqdm_progress("segment", disable=args.quiet) as progress:
        done = _segment_one(args.input, args.out, _settings(args), points, progress)
    print(json.dumps(done, indent=2))
    return flagged(done["row"])


def flagged(quality: dict) -> int:
    """The exit status of a finished fit: :data:`EXIT_FLAGGED`, with the reasons on stderr,
    when quality control flags it, else 0."""
    if not quality.get("suspect"):
        return 0
    reasons = "; ".join(suspect_reasons(quality)) or "quality control flagged it"
    print(f"warning: the fit is suspect: {reasons}. The files were written; review them before use.",
          file=sys.stderr)
    return EXIT_FLAGGED


def batch_job(path, name, folder, settings) -> dict:
    """One volume of segment-batch: its files in ``folder/<name>/`` (the batch runner moves
    them into the output folder), its CSV row returned. From Python:
    ``cochleaai.batch.run(partial(batch_job, settings=SegmentConfig(...)), items, out)``."""
    return _segment_one(path, Path(folder) / name, settings)["row"]


def warm_up() -> None:
    """What a batch worker does once, before its first volume: import what a volume needs,
    load numba's compiled kernel (from its cache, or compile it) and evaluate the shape
    function, so that the first volume takes as long as the others."""
    # what reading a volume, the fit, the quality control and the files import on the way
    for module in ("SimpleITK", "skimage.filters", "nrrd", "slicerio", "vtkmodules.vtkIOLegacy",
                   "cochleaai.io", "cochleaai.terminology", "cochleaai.segmentation.pipeline"):
        importlib.import_module(module)

    theta = default_params()
    points = np.random.default_rng(0).normal(0.0, 2.0, (64, 3)) + theta[7:10]
    sf = ShapeFunction()
    sf.evaluate(points, theta)
    sf.evaluate(points, theta, jacobian=True)
    arrays_to_polydata(*surface_arrays(theta, 0.5))


def review_order(row: dict) -> tuple:
    """Sort key of a batch's rows, reviewed from the top: failed files, then flagged cases,
    then the rest, each by decreasing quality-control surface error."""
    if "error" in row:
        return (0, 0.0)
    return (1 if row.get("suspect") else 2, -float(row.get("qc_surface_mm", float("inf"))))


def _cmd_segment_batch(args) -> int:
    out = OutputPlan(args.inputs).folder(args.out, ())     # resumable: the results there are kept
    items = batch.items_from_files(args.inputs)
    settings = _settings(args)
    # the table too is written under the folder's lock: no other run comes in between
    with batch.locked(out), tqdm_progress("segment-batch", disable=args.quiet) as progress:
        rows = batch.run(partial(batch_job, settings=settings), items, out, signature=repr(settings),
                         progress=progress, warm_up=warm_up, **batch.options(args))
        rows.sort(key=review_order)
        table = batch.write_csv(out / "measures.csv", rows)
    failed = [r for r in rows if "error" in r]
    print(json.dumps({"csv": str(table), "volumes": len(rows), "failed": len(failed),
                      "resumed": sum(r["status"] == "resumed" for r in rows)}, indent=2))
    return batch.exit_status(rows, table, "volumes", flagged=lambda row: row.get("suspect"))


def _common(p) -> None:
    d = SegmentConfig()
    p.add_argument("--side", choices=("right", "left"), default="right",
                   help="which ear (a left ear is fitted as a mirrored right ear; default right)")
    p.add_argument("--l-ref-fit", type=arguments.real(minimum=0.01, maximum=2.0), default=d.l_ref_fit,
                   help=f"logistic reference length while fitting, mm (default {d.l_ref_fit})")
    p.add_argument("--l-ref-final", type=arguments.real(minimum=0.01, maximum=2.0), default=d.l_ref_final,
                   help=f"reference length of the final label map, mm (default {d.l_ref_final}; the thesis used 0.25)")
    p.add_argument("--iterations", type=arguments.integer(1, 1000), default=d.outer_iterations, help=f"EM iterations (default {d.outer_iterations})")
    p.add_argument("--samples", type=arguments.integer(0, 100000), default=d.samples,
                   help=f"posterior samples for uncertainty and measures (default {d.samples})")
    p.add_argument("--seed", type=arguments.seed, default=d.seed, help="seed of the posterior samples")
    p.add_argument("--shape-step", choices=("gauss-newton", "bfgs"), default=d.shape_step)
    p.add_argument("--no-placement", action="store_true",
                   help="skip the placement search over the whole +-1.5 mm translation range "
                        "(about 0.7 s; a start within about a millimetre of the cochlea does not need it)")
    p.add_argument("--no-orientation-search", action="store_true",
                   help="from a centre point alone, or round window and apex, keep the template's "
                        "orientation instead of searching the one the points leave free")
    p.add_argument("--any-orientation", action="store_true",
                   help="without points: the volume is a crop around the cochlea in any orientation "
                        "(real scans); search the orientation instead of assuming the template's")
    p.add_argument("--parameters", type=int, choices=(10, 12), default=d.n_params,
                   help="10: the thesis's model; 12: with width and height factors of the duct "
                        f"(default {d.n_params})")
    p.add_argument("--label-map", choices=("lumen-wall", "shape-model"), default=d.label_map,
                   help="final label map: 'lumen-wall' follows the image near the fitted shape (default); "
                        "'shape-model' is the thesis's posterior at --l-ref-final")
    p.add_argument("--label-band", type=arguments.real(minimum=0.0, maximum=5.0), default=d.label_band_mm,
                   help=f"how far (mm) outside the fitted shape the lumen-wall map may reach (default {d.label_band_mm})")
    p.add_argument("--vestibule-wedge", type=arguments.real(minimum=0.0, maximum=90.0),
                   default=d.vestibule_wedge_deg, metavar="DEG",
                   help="also label the lumen up to DEG degrees past the round window along the duct's "
                        "continuation: the part of the vestibule next to the oval window that expert "
                        "'cochlear part' labels cut by a cylinder around the modiolus hold (default "
                        f"{d.vestibule_wedge_deg:g}, like those of Wimmer et al. 2019); "
                        f"{COCHLEA_ALONE_DEG:g}: the cochlea alone")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_calibrate(args) -> int:
    OutputPlan([args.data], args.force).file(args.out)
    with tqdm_progress("calibrate-shape", disable=args.quiet) as progress:
        table = calibrate(args.data, progress=progress)
    out = write_text_whole(args.out, json.dumps(table, indent=1))
    print(json.dumps({"out": str(out), **table["profile"],
                      "dice": {f["id"]: round(f["dice"], 3) for f in table["fits"]}}, indent=1))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("calibrate-shape", help="fit the cochlea model to expert labels of real CT; "
                                               "the cross-section profile table",
                       description="Fits the 14-parameter model (pose, centreline and the duct's width "
                                   "and height at base and apex) to the cochlear part of every expert "
                                   "label under --data (layout of the Wimmer et al. 2019 data set) and "
                                   "writes the per-specimen fits and the median profile as JSON "
                                   "(shipped as Resources/shape-calibration.json).")
    p.add_argument("--data", required=True, help="folder of specimens (<id>/<id>_CT_LABELS.nii.gz, <id>_DESC.json)")
    p.add_argument("--out", required=True, help="JSON file to write")
    add_force(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("segment", help="fit the cochlea shape model to a CT volume",
                       description="Bayesian logistic shape model fit. Writes labels.seg.nrrd (segments "
                                   "'Cochlea' and 'Cochlea shape model'), probability.nrrd, uncertainty.nrrd, "
                                   "shape.json (theta*, covariance, measures with std, quality control), "
                                   "centerline.mrk.json (labelled in degrees) and cochlea_shape.vtk.")
    p.add_argument("input", help="CT volume (.nrrd, .nii[.gz], .mha) in HU or any grey values")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--points", help="Slicer markups (.mrk.json or .fcsv) with points labelled 'center', "
                                    "'apex' or 'round window'; without it the cochlea must be at the "
                                    "centre of the volume in the template orientation")
    add_force(p)
    _common(p)
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser("segment-batch", help="segment every volume of a folder; CSV of measures and QC",
                       description="Segment every volume in folders in parallel; writes one result folder "
                                   "per volume (named after the file) and measures.csv sorted by "
                                   "quality-control score (failed files and suspected failures first). "
                                   "A rerun skips the volumes already done; one batch at a time per "
                                   "output folder. Exit status 3: finished, but some volumes failed or "
                                   "were flagged by quality control; see docs/batch.md.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="folders of CT volumes (ROI-template crops) or volume files")
    p.add_argument("--out", required=True, help="output folder")
    _common(p)
    # one thread per worker: the fit is many small evaluations, faster on one core each
    batch.add_arguments(p, workers=2, threads=1)
    p.set_defaults(func=_cmd_segment_batch)
