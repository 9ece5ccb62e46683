"""``make demo`` step: detect the demo phantom's landmarks with the shipped phantom model
(the phantom's truth scores it; the real-CT model is scored by ``bench landmarks-real``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cochleaai import io
from cochleaai.io.outputs import write_text_whole
from cochleaai.landmarks.detect import detect_landmarks
from cochleaai.landmarks.model_io import load_model, phantom_model_path
from cochleaai.phantom import SIDE as PHANTOM_SIDE
from cochleaai.progress import Progress
from cochleaai.slicer import mrml


def demo_step(phantom, scene, out_dir, progress=None) -> dict:
    """Add the point list "Detected landmarks" and a confidence table to ``scene``, write
    ``<out_dir>/landmarks/detected.mrk.json`` and ``summary.json``, report the errors."""
    p = Progress.wrap(progress)
    p(0.0, "Loading the one-shot landmark model")
    model = load_model(phantom_model_path())
    det = detect_landmarks(model, phantom.ct, progress=p.stage(0.05, 0.9), side=PHANTOM_SIDE)
    markups = det.point_list("Detected landmarks")
    node = mrml.markups_from_points(scene, markups)
    truth = phantom.landmarks.as_dict()
    errors = {lab: float(np.linalg.norm(pt - truth[lab])) for lab, pt in zip(markups.labels, markups.points)
              if lab in truth}
    mrml.table_from_dict(scene, {"Landmark": list(errors), "Error (mm)": list(errors.values())},
                         "Detected landmarks: error against the phantom truth")
    out = Path(out_dir) / "landmarks"
    out.mkdir(parents=True, exist_ok=True)
    io.write_markups_json(out / "detected.mrk.json", markups)
    summary = {"node": node.GetName(), "model": model.card.get("name", ""),
               "confidence": round(det.confidence, 3), "flagged": det.flagged,
               "error_mm": {k: round(v, 3) for k, v in errors.items()},
               "mean_error_mm": round(float(np.mean(list(errors.values()))), 3) if errors else None,
               "seconds": round(det.seconds, 1), "file": str(out / "detected.mrk.json")}
    write_text_whole(out / "summary.json", json.dumps(summary, indent=2))
    p(1.0, "Landmarks detected")
    return summary
