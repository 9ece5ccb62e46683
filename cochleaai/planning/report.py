"""The plan as one self-contained HTML page (pictures inlined, no file or network beside it).

At the top, any warning in words a clinician reads (a fit flagged by quality control); then
the cochlea's measures with their 95 % intervals, the array table in the ranked order, the
contact table and pictures of the best-ranked array (its contacts on the fitted cochlea seen
from above, and the frequency of each contact with its interval), and the citation of every
formula and data source. Matplotlib draws the pictures (Agg, no display).
"""
from __future__ import annotations

import base64
import html
import io
from typing import Optional

import numpy as np

from cochleaai.io.figures import pyplot
from cochleaai.io.outputs import write_text_whole
from cochleaai.planning import paths
from cochleaai.shape.params import deformable_of

MEASURES_SHOWN = (("cdl_organ_of_corti_mm", "Cochlear duct length, organ of Corti", "mm"),
                  ("cdl_lateral_wall_mm", "Cochlear duct length, lateral wall", "mm"),
                  ("a_value_mm", "A value (basal turn diameter)", "mm"),
                  ("b_value_mm", "B value (basal turn width)", "mm"),
                  ("height_mm", "Cochlear height", "mm"))
STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;"
         "text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}"
         ".warning{background:#fde2e1;border:2px solid #c0392b;padding:0.8em;font-weight:bold}"
         "figure{display:inline-block;margin:0.5em}figcaption{font-size:90%;color:#555}"
         # printed (plan --pdf): A4, rows and pictures not split across pages, colours kept
         "@page{size:A4;margin:12mm}@media print{body{margin:0;font-size:10pt}tr,figure,.warning"
         "{break-inside:avoid}img{max-width:100%}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}")


def _e(text) -> str:
    return html.escape(str(text))


def interval(figure: dict, digits: int = 0, unit: str = "") -> str:
    """A :func:`~cochleaai.planning.plan.summary` as HTML: mean, sd and the 95 % interval."""
    if figure is None or figure.get("mean") is None or not np.isfinite(figure["mean"]):
        return "-"
    f = f"{{:.{digits}f}}"
    return (f"{f.format(figure['mean'])} &plusmn; {f.format(figure['sd'])}{unit} "
            f"<small>({f.format(figure['low'])}-{f.format(figure['high'])})</small>")


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cochlea_picture(theta, array_plan) -> str:
    """The fitted cochlea from above (model frame): the organ of Corti and the array's path,
    its contacts numbered from the apex."""
    plt = pyplot()
    curves = paths.curve_points(np.asarray(deformable_of(theta), float))
    deg = np.degrees(paths.angles_rad())
    fig, ax = plt.subplots(figsize=(5, 5))
    oc = curves["organ of Corti"]
    ax.plot(oc[:, 0], oc[:, 1], color="#888", label="organ of Corti")
    path = curves[array_plan["position"]]
    angles = np.array([c["angle_deg"]["value"] if c["angle_deg"]["value"] is not None else np.nan
                       for c in array_plan["contacts"]], float)
    inside = np.isfinite(angles)
    x, y = (np.interp(angles[inside], deg, path[:, a]) for a in (0, 1))
    ax.plot(x, y, "o", color="#c0392b", label=f"{array_plan['name']} contacts")
    for k, xk, yk in zip(np.flatnonzero(inside) + 1, x, y):
        ax.annotate(str(k), (xk, yk), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_aspect("equal")
    ax.set_xlabel("mm (round window on the +x axis)")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Fitted cochlea seen along its axis")
    return _png(fig)


def frequency_picture(array_plan) -> str:
    """Characteristic frequency per contact (organ of Corti and spiral ganglion), with the
    95 % interval over the shape posterior."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, colour in (("greenwood_hz", "organ of Corti (Greenwood)", "#2e86c1"),
                               ("spiral_ganglion_hz", "spiral ganglion (angle map)", "#d35400")):
        k = np.array([c["contact"] for c in array_plan["contacts"]])
        mean = np.array([c[key]["mean"] for c in array_plan["contacts"]], float)
        low = np.array([c[key]["low"] for c in array_plan["contacts"]], float)
        high = np.array([c[key]["high"] for c in array_plan["contacts"]], float)
        ok = np.isfinite(mean)
        ax.errorbar(k[ok], mean[ok], yerr=[mean[ok] - low[ok], high[ok] - mean[ok]], fmt="o-", ms=3,
                    capsize=2, label=label, color=colour)
    ax.set_yscale("log")
    ax.set_xlabel("contact (1 = most apical)")
    ax.set_ylabel("characteristic frequency (Hz)")
    ax.legend(fontsize=8)
    ax.set_title(f"{array_plan['name']}: frequency at each contact")
    return _png(fig)


def page_start(title: str, subject: str = "", warnings=()) -> str:
    """The start of a page: its head and title, the subject line and the warnings on top."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"]
    if subject:
        parts.append(f"<p>{_e(subject)}</p>")
    parts += [f"<p class='warning'>{_e(w)}</p>" for w in warnings]
    return "".join(parts)


def sources(citations: dict) -> str:
    """The sources section: each citation under its key."""
    items = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in citations.items())
    return f"<h2>Sources</h2><ul>{items}</ul>"


def html_report(plan: dict, theta, title: str = "Cochlear implant plan", subject: str = "") -> str:
    """The page for ``plan`` (:meth:`cochleaai.planning.plan.CochleaPlan.to_dict`) of the
    cochlea ``theta``."""
    parts = [page_start(title, subject, plan.get("warnings", []))]
    scale = float(plan.get("interval_scale", 1.0))
    widened = (f", its spread widened {scale:.1f}-fold so that the intervals hold the truth as often as they "
               "claim to on phantoms" if scale > 1.0 else "")
    parts.append(f"<p>{_e(plan['side'].capitalize())} ear. Every figure: mean &plusmn; standard deviation "
                 f"over {plan['samples']} draws of the shape posterior{widened}, with the central 95 % interval "
                 "in brackets (the cochlea's measures as in the segmentation's table).</p>"
                 "<h2>The cochlea</h2><table><thead><tr><th>measure</th><th>value</th></tr></thead>")
    for key, label, unit in MEASURES_SHOWN:
        m = plan["measures"].get(key)
        if m:
            parts.append(f"<tr><td>{_e(label)}</td><td>{m['mean']:.1f} &plusmn; {m['sd']:.1f} {unit} "
                         f"<small>({m['low']:.1f}-{m['high']:.1f})</small></td></tr>")
    parts.append(f"</table><h2>Arrays, ranked for {plan['target_coverage_pct']:.0f} % coverage</h2><table><thead><tr>"
                 "<th>array</th><th>position</th><th>contacts</th><th>insertion (mm)</th>"
                 "<th>depth of the apical contact (deg)</th><th>coverage of the organ of Corti (%)</th>"
                 "<th>longer than the duct</th><th>published depths (deg)</th></tr></thead>")
    for a in plan["arrays"]:
        cohort = a.get("cohort")
        published = "-" if not cohort else (
            f"{cohort.get('statistic', 'mean')} {cohort['mean_deg']:.0f}" +
            (f", {cohort.get('spread', 'range')} {cohort['min_deg']:.0f}-{cohort['max_deg']:.0f}"
             if cohort.get("min_deg") is not None else "") +
            ("" if a.get("within_cohort") is None else (" (inside)" if a["within_cohort"] else " (outside)")))
        parts.append(f"<tr><td>{_e(a['manufacturer'])} {_e(a['name'])}</td><td>{_e(a['position'])}</td>"
                     f"<td>{a['n_contacts']}</td><td>{a['insertion_length_mm']:.1f}</td>"
                     f"<td>{interval(a['apical_deg'])}</td><td>{interval(a['coverage_pct'])}</td>"
                     f"<td>{100 * a['over_inserted_probability']:.0f} %</td><td>{_e(published)}</td></tr>")
    parts.append("</table>")
    best = plan["arrays"][0]
    parts.append(f"<h2>{_e(best['manufacturer'])} {_e(best['name'])}: contacts</h2><table><thead><tr><th>contact "
                 "(1 = apical)</th><th>manufacturer's number</th><th>angle (deg)</th><th>organ of Corti (% "
                 "from the base)</th><th>Greenwood (Hz)</th><th>spiral ganglion (Hz)</th></tr></thead>")
    for c in best["contacts"]:
        number = "-" if c.get("manufacturer_number") is None else c["manufacturer_number"]
        parts.append(f"<tr><td>{c['contact']}</td><td>{number}</td><td>{interval(c['angle_deg'])}</td>"
                     f"<td>{interval(c['organ_of_corti_pct'])}</td><td>{interval(c['greenwood_hz'])}</td>"
                     f"<td>{interval(c['spiral_ganglion_hz'])}</td></tr>")
    parts.append(f"</table><figure><img alt='fitted cochlea with the array' src='{cochlea_picture(theta, best)}'>"
                 "<figcaption>The fitted cochlea and the array's contacts (fitted shape).</figcaption></figure>"
                 f"<figure><img alt='frequency map' src='{frequency_picture(best)}'><figcaption>Frequency of "
                 "each contact with its 95 % interval.</figcaption></figure>")
    parts.append(sources(plan.get("citations", {})))
    parts.append("<p><small>Made by CochleaAI. The array paths are those of the shape model: the lateral "
                 "wall of the scala tympani, or its centre for mid-scala and precurved (perimodiolar) "
                 "arrays; compare the depths with the published ones above before relying on "
                 "them.</small></p></body></html>")
    return "".join(parts)


def write_report(path, plan: dict, theta, title: str = "Cochlear implant plan", subject: Optional[str] = "") -> str:
    """Write :func:`html_report` whole to ``path``."""
    return str(write_text_whole(path, html_report(plan, theta, title, subject or "")))
