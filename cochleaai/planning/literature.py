"""Published maps and formulas a cochlear-implant plan rests on, each with its source.

* :func:`greenwood_hz`: Greenwood's place-frequency function of the human organ of Corti.
* :func:`spiral_ganglion_hz`: the spiral-ganglion frequency at an angle from the round
  window (Stakhovskaya et al. 2007), and the organ-of-Corti to spiral-ganglion cubic of the
  same paper (:func:`spiral_ganglion_percent`, :func:`spiral_ganglion_hz_at_fraction`).
* Cochlear duct length from the basal-turn diameter A: :func:`escude_lateral_wall_mm`,
  the four Alexiades et al. equations, :func:`koch_organ_of_corti_mm`.
* :data:`COHORT_AID`: published angular insertion depths of the most apical contact on
  post-operative CT, by catalogue array.

Plain Python and numpy. Every constant was read in the source cited next to it; where a
source was read second-hand (a review table, a published script) the citation says so.
Not implemented: the A-value equation of Schurzig et al. (2018): no source read here gives
it, and it is not reconstructed from memory.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

# --- Greenwood -------------------------------------------------------------------------

GREENWOOD_1990 = ("Greenwood DD. A cochlear frequency-position function for several species - "
                  "29 years later. J Acoust Soc Am 1990;87(6):2592-2605, doi:10.1121/1.399052. "
                  "Human constants A = 165.4 Hz, a = 2.1, k = 0.88 (x = fraction of the partition "
                  "from the apex), as quoted in Stakhovskaya et al. 2007 and in World J "
                  "Otorhinolaryngol Head Neck Surg 2019;5(2):117-121, table 1")
#: Greenwood's human constants: F = A (10^(a x) - k), x the fraction of the length from the apex.
GREENWOOD_A_HZ = 165.4
GREENWOOD_a = 2.1
GREENWOOD_k = 0.88


def _out(values: np.ndarray, like):
    return float(values) if np.ndim(like) == 0 else values


def greenwood_hz(fraction_from_apex):
    """Characteristic frequency (Hz) of the human organ of Corti at ``fraction_from_apex``
    (0 at the apex, 1 at the base; scalar or array). About 19.8 Hz at the apex and
    20.7 kHz at the base (Greenwood 1990)."""
    x = np.asarray(fraction_from_apex, dtype=float)
    return _out(GREENWOOD_A_HZ * (10.0 ** (GREENWOOD_a * x) - GREENWOOD_k), fraction_from_apex)


def greenwood_fraction_from_apex(hz):
    """Inverse of :func:`greenwood_hz`: the fraction of the organ of Corti from the apex whose
    characteristic frequency is ``hz``."""
    f = np.asarray(hz, dtype=float)
    return _out(np.log10(f / GREENWOOD_A_HZ + GREENWOOD_k) / GREENWOOD_a, hz)


# --- Stakhovskaya: the spiral-ganglion map ----------------------------------------------

STAKHOVSKAYA_2007 = ("Stakhovskaya O, Sridhar D, Bonham BH, Leake PA. Frequency map for the human "
                     "cochlear spiral ganglion: implications for cochlear implants. J Assoc Res "
                     "Otolaryngol 2007;8(2):220-233, doi:10.1007/s10162-007-0076-9 (PMC2394499)")
#: Spiral-ganglion frequency (Hz) at angles (degrees) from the round window, 0-720 in 90-degree
#: steps, as reported by Stakhovskaya et al. 2007 and transcribed by openMHA
#: (examples/32-ci-vocoder/mfiles/compute_synthesis_center_frequencies_cis.m, HoerTech
#: openMHA, 2024), which uses them to map the angles of Landsberger et al. 2015 (Ear Hear
#: 36(5):e207-e213) to frequencies. Read second-hand: the paper's table itself was not read.
SG_ANGLE_DEG = (0.0, 90.0, 180.0, 270.0, 360.0, 450.0, 540.0, 630.0, 720.0)
SG_ANGLE_HZ = (17225.0, 6193.0, 3174.0, 1539.0, 785.0, 550.0, 366.0, 215.0, 58.0)
SG_ANGLE_SOURCE = (f"{STAKHOVSKAYA_2007}; angle-frequency values as transcribed in openMHA "
                   "(HoerTech, examples/32-ci-vocoder, 2024)")

#: Stakhovskaya's cubic from a place on the organ of Corti to the place on the spiral ganglion
#: with the same frequency: y = c1 x + c2 x^2 + c3 x^3, x and y in percent of each structure's
#: length. Coefficients as given by Grasmeder et al. (2014) and transcribed in
#: the script spiral_ganglion.m of github.com/NawalElBoghdady/FATs-Exp2 (read second-hand).
#: Both are measured from the base: the curve has slope 1.43 at x = 0 and slope 0 at x = 100,
#: so the ganglion's apical end gathers the apical organ of Corti (the ganglion stops short
#: of the apex), and y(100) = 100.
SG_CUBIC = (1.43, 0.0014, -5.7e-5)
SG_CUBIC_SOURCE = (f"{STAKHOVSKAYA_2007}; coefficients as given by Grasmeder et al. 2014 "
                   "and transcribed in github.com/NawalElBoghdady/FATs-Exp2 spiral_ganglion.m")


def spiral_ganglion_hz(angle_deg):
    """Spiral-ganglion characteristic frequency (Hz) at ``angle_deg``: the angular insertion
    depth in degrees, measured around the modiolus from the round window (0 degrees), as in
    post-operative CT. Scalar or array.

    Between the tabulated angles (:data:`SG_ANGLE_DEG`, every 90 degrees) the logarithm of
    the frequency is interpolated linearly (a choice of this package, not the paper's);
    outside 0-720 degrees the end values are returned.
    """
    a = np.asarray(angle_deg, dtype=float)
    out = np.exp(np.interp(a, SG_ANGLE_DEG, np.log(SG_ANGLE_HZ)))
    return _out(out, angle_deg)


def spiral_ganglion_percent(oc_percent_from_base):
    """Place on the spiral ganglion (percent of its length from the base) that carries the
    frequency of ``oc_percent_from_base`` on the organ of Corti (Stakhovskaya's cubic)."""
    x = np.asarray(oc_percent_from_base, dtype=float)
    c1, c2, c3 = SG_CUBIC
    return _out(c1 * x + c2 * x ** 2 + c3 * x ** 3, oc_percent_from_base)


_OC_GRID = np.linspace(0.0, 100.0, 20001)


def organ_of_corti_percent(sg_percent_from_base):
    """Inverse of :func:`spiral_ganglion_percent` on 0-100 % (the cubic rises monotonically there)."""
    y = np.clip(np.asarray(sg_percent_from_base, dtype=float), 0.0, 100.0)
    sg = np.maximum.accumulate(spiral_ganglion_percent(_OC_GRID))
    return _out(np.interp(y, sg, _OC_GRID), sg_percent_from_base)


def spiral_ganglion_hz_at_fraction(sg_fraction_from_base):
    """Frequency (Hz) at a place on the spiral ganglion given as the fraction of its length
    from the base: Greenwood's frequency of the matching organ-of-Corti place."""
    oc = np.asarray(organ_of_corti_percent(100.0 * np.asarray(sg_fraction_from_base, float)))
    return _out(greenwood_hz(1.0 - oc / 100.0), sg_fraction_from_base)


# --- cochlear duct length from the A value ----------------------------------------------

ESCUDE_2006 = ("Escude et al., Audiol Neurotol 2006;11 Suppl 1:27-33; equation as tabulated in "
               "World J Otorhinolaryngol Head Neck Surg 2019;5(2):117-121, "
               "doi:10.1016/j.wjorl.2018.09.004, table 1")
ALEXIADES_2015 = ("Alexiades G, Dhanasingh A, Jolly C. Method to estimate the complete and two-turn "
                  "cochlear duct length. Otol Neurotol 2015;36(5):904-907 (equations of the abstract)")
KOCH_TABLE = ("Koch et al., CDL(OC) = 4.16 A - 5.05, as tabulated in World J Otorhinolaryngol Head "
              "Neck Surg 2019;5(2):117-121, table 1 (the original paper was not read)")


def escude_lateral_wall_mm(a_mm, angle_deg):
    """Lateral-wall length (mm) from the round window to ``angle_deg`` (degrees from the round
    window) for a basal-turn diameter ``a_mm``: 2.62 A ln(1 + angle / 235) (Escude et al.
    2006). There is no fixed "full" angle in the formula: pass the angle wanted (e.g. 720
    for two turns, 900 for two and a half)."""
    a = np.asarray(a_mm, dtype=float)
    t = np.asarray(angle_deg, dtype=float)
    out = 2.62 * a * np.log1p(t / 235.0)
    return float(out) if np.ndim(out) == 0 else out


def alexiades_cdl_organ_of_corti_mm(a_mm):
    """Complete cochlear duct length along the organ of Corti (round window to helicotrema):
    4.16 A - 4 (Alexiades et al. 2015). This, not the lateral wall, is the curve of 4.16 A - 4."""
    return _out(4.16 * np.asarray(a_mm, float) - 4.0, a_mm)


def alexiades_cdl_lateral_wall_mm(a_mm):
    """Complete cochlear duct length along the lateral wall: 4.16 A - 2.7 (Alexiades et al.
    2015; the abstract's second curve, printed with the subscript rendered as "(i)")."""
    return _out(4.16 * np.asarray(a_mm, float) - 2.7, a_mm)


def alexiades_two_turn_organ_of_corti_mm(a_mm):
    """Two-turn (720 degree) length along the organ of Corti: 3.65 (A - 1) (Alexiades et al. 2015)."""
    return _out(3.65 * (np.asarray(a_mm, float) - 1.0), a_mm)


def alexiades_two_turn_lateral_wall_mm(a_mm):
    """Two-turn (720 degree) length along the lateral wall: 3.65 (A - 0.7) (Alexiades et al. 2015)."""
    return _out(3.65 * (np.asarray(a_mm, float) - 0.7), a_mm)


def koch_organ_of_corti_mm(a_mm):
    """Complete length along the organ of Corti after Koch et al.: 4.16 A - 5.05 (see :data:`KOCH_TABLE`)."""
    return _out(4.16 * np.asarray(a_mm, float) - 5.05, a_mm)


# --- published angular insertion depths -------------------------------------------------

O_CONNELL_2017 = ("O'Connell BP, Hunter JB, Haynes DS, Holder JT, Dedmon MM, Noble JH, Dawant BM, "
                  "Wanna GB. Insertion depth impacts speech perception and hearing preservation for "
                  "lateral wall electrodes. Laryngoscope 2017;127(10):2352-2357, doi:10.1002/lary.26467 "
                  "(PMC5825186)")
CANFAROTTA_2021 = ("Canfarotta MW, Dillon MT, Brown KD, Pillsbury HC, Dedmon MM, O'Connell BP. "
                   "Incidence of Complete Insertion in Cochlear Implant Recipients of Long Lateral Wall "
                   "Arrays. Otolaryngol Head Neck Surg 2021;165(4):571-577, doi:10.1177/0194599820987456 "
                   "(PMC8943918)")

LANDSBERGER_2015 = ("Landsberger DM, Svrakic M, Roland JT Jr, Svirsky MA. The relationship between "
                    "insertion angles, default frequency allocations, and spiral ganglion place pitch "
                    "in cochlear implants. Ear Hear 2015;36(5):e207-e213, "
                    "doi:10.1097/AUD.0000000000000163; average insertion angles of its Contour Advance "
                    "electrodes as published by the same authors (doi:10.13140/RG.2.1.2637.4483) and "
                    "transcribed in openMHA (HoerTech, examples/32-ci-vocoder/mfiles/"
                    "compute_synthesis_center_frequencies_ace.m, 2024): read second-hand")

#: Angular insertion depth (degrees) of the most apical contact on post-operative CT, by
#: catalogue key. "mean_deg" holds the central value the paper reports and "statistic" says
#: which it is (both papers here give medians); "min_deg"/"max_deg" are the spread named in
#: "spread" (the full range, or the interquartile range). n: arrays measured (None where the
#: abstract gives only the study total).
COHORT_AID: Dict[str, dict] = {
    "flexsoft": {"mean_deg": 641.0, "statistic": "median", "sd_deg": None, "min_deg": 533.0,
                 "max_deg": 751.0, "spread": "range", "n": 49,
                 "citation": f"{CANFAROTTA_2021}; complete insertions only"},
    "flex28": {"mean_deg": 575.0, "statistic": "median", "sd_deg": None, "min_deg": 465.0,
               "max_deg": 584.0, "spread": "interquartile range", "n": None,
               "citation": f"{O_CONNELL_2017}; 48 implants over FLEX24, FLEX28 and STANDARD"},
    "flex24": {"mean_deg": 408.0, "statistic": "median", "sd_deg": None, "min_deg": 373.0,
               "max_deg": 449.0, "spread": "interquartile range", "n": None,
               "citation": f"{O_CONNELL_2017}; 48 implants over FLEX24, FLEX28 and STANDARD"},
}

#: Cohorts whose abstracts give a central value but no range (kept apart: a plan compares a
#: predicted depth with a cohort's range).
COHORT_AID_WITHOUT_RANGE: Dict[str, dict] = {
    "slimj": {"mean_deg": 401.0, "statistic": "mean", "sd_deg": 41.0, "n": None,
              "citation": ("Insertion Results and Hearing Outcomes of a Slim Lateral Wall Electrode. "
                           "J Int Adv Otol 2024;20:1-7, doi:10.5152/iao.2024.22962; 25 implantations "
                           "in 23 patients, the number with a measured angle not stated in the abstract")},
    "slim_modiolar": {"mean_deg": 395.0, "statistic": "mean", "sd_deg": None, "n": 18,
                      "citation": ("Preservation of residual hearing after cochlear implant surgery "
                                   "with slim modiolar electrode (abstract on springermedizin.de, "
                                   "record 17336224; journal details not shown there); 18 ears, "
                                   "cone-beam CT")},
    # The average angle of electrode 22 (the most apical), 380.6 degrees, in the openMHA table.
    "contour_advance": {"mean_deg": 381.0, "statistic": "mean", "sd_deg": None, "n": None,
                        "citation": LANDSBERGER_2015},
}

#: Every source of this module, for reports.
CITATIONS: Dict[str, str] = {
    "greenwood": GREENWOOD_1990,
    "spiral_ganglion_angle_map": SG_ANGLE_SOURCE,
    "spiral_ganglion_cubic": SG_CUBIC_SOURCE,
    "escude": ESCUDE_2006,
    "alexiades": ALEXIADES_2015,
    "koch": KOCH_TABLE,
    "cohort_flexsoft": CANFAROTTA_2021,
    "cohort_flex24_flex28": O_CONNELL_2017,
    **{f"cohort_{key}": cohort["citation"] for key, cohort in COHORT_AID_WITHOUT_RANGE.items()},
}
