"""X-ray spectra, attenuation of the simulated materials, and the HU -> materials split.

The tables are read from ``Resources/Physics`` (made by its ``generate_tables.py`` from
spekpy and xraylib; provenance and checksums in ``provenance.json``). They are tabulated
every keV; a :class:`Beam` groups them into a few energy bins, each bin's attenuation being
the fluence-weighted mean over its 1-keV samples (so the bins reproduce the attenuation of
thin layers exactly and thick layers closely).

HU reference: HU = 1000 (mu / mu_ref - 1), where every material's reference attenuation is
its mean over the spectrum *behind 150 mm of water and 20 mm of cortical bone* (a head with
its skull and petrous bone), weighted by that hardened fluence; ``mu_ref`` is this value for water. (Head
scanners calibrate bone against such a hardened beam; without it dense bone would read
15-20 % low.) The scanner's water pre-correction
maps any water line integral to ``mu_ref`` times the length, so water is 0 HU after
reconstruction at any thickness.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io import sha256_of

PHYSICS_DIR = Path(__file__).resolve().parents[2] / "Resources" / "Physics"
MATERIALS = ("water", "bone", "platinum_iridium", "titanium")
METALS = ("platinum_iridium", "titanium")
KVPS = (120, 140)
REFERENCE_WATER_MM = 150.0      # the head, as the scanner's calibration sees it:
REFERENCE_BONE_MM = 20.0        # water, skull and petrous bone (cortical-bone equivalent)


def _checked(name: str) -> Path:
    path = PHYSICS_DIR / name
    if not path.is_file():
        raise CochleaAIError(f"The physics table {path} is missing; reinstall the extension or run "
                             "Resources/Physics/generate_tables.py.")
    try:
        expected = json.loads((PHYSICS_DIR / "provenance.json").read_text())["sha256"][name]
    except (OSError, KeyError, ValueError):
        raise CochleaAIError(f"{PHYSICS_DIR / 'provenance.json'} is missing or does not list {name}; "
                             "run Resources/Physics/generate_tables.py.") from None
    if sha256_of(path) != expected:
        raise CochleaAIError(f"The physics table {path} does not match its checksum in provenance.json "
                             "(corrupted or edited); run Resources/Physics/generate_tables.py.")
    return path


def _read_csv(path: Path) -> tuple:
    with path.open() as fh:
        rows = list(csv.reader(fh))
    return rows[0], np.array(rows[1:], dtype=float)


@lru_cache(maxsize=None)
def spectrum(kvp: int) -> tuple:
    """``(energies_keV, relative fluence)`` of the stored tungsten spectrum at ``kvp``."""
    if int(kvp) not in KVPS:
        raise CochleaAIError(f"No stored spectrum for {kvp} kVp; choose one of {KVPS}.")
    _, data = _read_csv(_checked(f"spectrum_W_{int(kvp)}kVp.csv"))
    return data[:, 0], data[:, 1] / data[:, 1].sum()


@lru_cache(maxsize=None)
def _attenuation() -> tuple:
    header, data = _read_csv(_checked("attenuation.csv"))
    names = [h.replace("_cm2_per_g", "") for h in header[1:]]
    return data[:, 0], {n: data[:, k + 1] for k, n in enumerate(names)}


@lru_cache(maxsize=None)
def densities() -> Dict[str, float]:
    prov = json.loads((PHYSICS_DIR / "provenance.json").read_text())
    return {m: float(v["density_g_cm3"]) for m, v in prov["attenuation"]["materials"].items()}


def mu_per_mm(material: str, energies_keV) -> np.ndarray:
    """Linear attenuation (1/mm) of ``material`` at its nominal density."""
    e, table = _attenuation()
    if material not in table:
        raise CochleaAIError(f"Unknown material {material!r}; known: {', '.join(table)}.")
    # log-log interpolation is accurate between absorption edges
    mass = np.exp(np.interp(np.log(energies_keV), np.log(e), np.log(table[material])))
    return mass * densities()[material] / 10.0


@dataclass(frozen=True)
class Beam:
    """A binned polychromatic beam: ``weights`` (sum 1) and per-material ``mu`` (1/mm) per bin."""

    kvp: int
    energies: np.ndarray      # fluence-weighted mean energy of each bin (keV)
    weights: np.ndarray
    mu: Dict[str, np.ndarray]
    mu_ref: float             # HU reference: effective attenuation of water (1/mm)
    reference_weights: np.ndarray = None   # fluence behind the reference water layer


    @property
    def bone_hu(self) -> float:
        """HU of nominal cortical bone at the reference (the water/bone mixing end point)."""
        return 1000.0 * (self.effective_mu("bone") / self.mu_ref - 1.0)

    def effective_mu(self, material: str) -> float:
        w = self.weights if self.reference_weights is None else self.reference_weights
        return float(np.sum(w * self.mu[material]))


@lru_cache(maxsize=None)
def make_beam(kvp: int = 120, n_bins: int = 10) -> Beam:
    """Group the 1-keV spectrum into ``n_bins`` (>= 5) bins of equal width."""
    if int(n_bins) < 5:
        raise CochleaAIError("Use at least 5 energy bins.")
    e, w = spectrum(kvp)
    keep = w > 1e-6 * w.max()
    e, w = e[keep], w[keep]
    edges = np.linspace(e.min() - 0.5, e.max() + 0.5, int(n_bins) + 1)
    which = np.clip(np.digitize(e, edges) - 1, 0, int(n_bins) - 1)
    weights, energies = np.zeros(n_bins), np.zeros(n_bins)
    mu = {m: np.zeros(n_bins) for m in MATERIALS}
    fine = {m: mu_per_mm(m, e) for m in MATERIALS}
    for b in range(int(n_bins)):
        sel = which == b
        weights[b] = w[sel].sum()
        if weights[b] == 0:
            continue
        energies[b] = np.sum(w[sel] * e[sel]) / weights[b]
        for m in MATERIALS:
            mu[m][b] = np.sum(w[sel] * fine[m][sel]) / weights[b]
    ok = weights > 0
    beam = Beam(int(kvp), energies[ok], weights[ok] / weights[ok].sum(),
                {m: v[ok] for m, v in mu.items()}, 0.0)
    hardened = beam.weights * np.exp(-REFERENCE_WATER_MM * beam.mu["water"]
                                     - REFERENCE_BONE_MM * beam.mu["bone"])
    hardened /= hardened.sum()
    mu_ref = float(np.sum(hardened * beam.mu["water"]))
    return Beam(beam.kvp, beam.energies, beam.weights, beam.mu, mu_ref, hardened)


def decompose_hu(hu: np.ndarray, beam: Beam) -> Dict[str, np.ndarray]:
    """Split HU into water and bone volume fractions (float32 arrays, same shape).

    Air (-1000 HU) to water (0 HU): water of scaled density. Water to the beam's cortical
    bone HU: a water/bone mixture. Above it: bone of scaled density. At the reference energy
    the split reproduces the input HU exactly.
    """
    hu = np.asarray(hu, dtype=np.float32)
    ratio = 1.0 + hu / 1000.0                        # mu / mu_ref
    bone_hu = beam.bone_hu
    f_bone = np.clip(hu / bone_hu, 0.0, None)
    water = np.where(hu <= 0, np.clip(ratio, 0.0, None), np.clip(1.0 - f_bone, 0.0, None))
    bone = np.where(f_bone <= 1.0, f_bone, ratio * beam.mu_ref / beam.effective_mu("bone"))
    return {"water": water.astype(np.float32), "bone": bone.astype(np.float32)}


def water_precorrection(beam: Beam, max_mm: float = 400.0, degree: int = 4) -> np.ndarray:
    """Polynomial (numpy.polyval coefficients) mapping a polychromatic water line integral
    to ``mu_ref * length``: the scanner's water beam-hardening pre-correction."""
    length = np.linspace(0.0, max_mm, 400)
    p = -np.log(np.sum(beam.weights[None, :] * np.exp(-np.outer(length, beam.mu["water"])), axis=1))
    coeffs = np.polyfit(p, beam.mu_ref * length, degree)
    return coeffs
