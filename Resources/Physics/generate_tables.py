"""Recreate the stored X-ray spectra and attenuation tables of ``cochleaai.simulation``.

Needs spekpy (spectra) and xraylib (cross sections), which the project does not need at
run time:

    pip install spekpy==2.5.4 xraylib==4.3.0
    python Resources/Physics/generate_tables.py

Writes, next to this file:
* ``spectrum_W_<kVp>kVp.csv``: photon fluence per keV bin (1 keV wide, centre energy)
  of a tungsten anode, 12 degree anode angle, 6 mm Al total filtration, from spekpy
  (Poludniowski et al., Phys. Med. Biol. 66 (2021) 175010), normalised to sum 1;
* ``attenuation.csv``: mass attenuation coefficients (cm^2/g, total with coherent
  scattering) from xraylib (Schoonjans et al., Spectrochim. Acta B 66 (2011) 776) for water,
  cortical bone (ICRP, NIST composition), platinum-iridium 90/10 by mass and titanium,
  1 to 150 keV, with the densities used;
* ``provenance.json``: versions, settings and checksums.
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KVPS = (120, 140)
ANODE_ANGLE_DEG = 12.0
FILTER_AL_MM = 6.0
ENERGIES_KEV = np.arange(1, 151, dtype=float)
# name: (density g/cm3, description)
MATERIALS = {
    "water": (1.0, "H2O"),
    "bone": (1.85, "Bone, Cortical (ICRP), NIST composition"),
    "platinum_iridium": (21.55, "Pt 90 % / Ir 10 % by mass"),
    "titanium": (4.506, "Ti, unalloyed"),
}


def spectra():
    import spekpy

    out = {}
    for kvp in KVPS:
        s = spekpy.Spek(kvp=kvp, th=ANODE_ANGLE_DEG, dk=1.0, targ="W")
        s.filter("Al", FILTER_AL_MM)
        k, fluence = s.get_spectrum()
        fluence = np.asarray(fluence, dtype=float)
        out[kvp] = (np.asarray(k, dtype=float), fluence / fluence.sum())
    return out, spekpy.__version__ if hasattr(spekpy, "__version__") else "2.5.4"


def attenuation():
    import xraylib

    bone = xraylib.GetCompoundDataNISTByName("Bone, Cortical (ICRP)")

    def total(material, e):
        if material == "water":
            return xraylib.CS_Total_CP("H2O", e)
        if material == "bone":
            return sum(w * xraylib.CS_Total(z, e) for z, w in zip(bone["Elements"], bone["massFractions"]))
        if material == "platinum_iridium":
            return 0.9 * xraylib.CS_Total(78, e) + 0.1 * xraylib.CS_Total(77, e)
        if material == "titanium":
            return xraylib.CS_Total(22, e)
        raise KeyError(material)

    table = {m: np.array([total(m, e) for e in ENERGIES_KEV]) for m in MATERIALS}
    return table, xraylib.__version__ if hasattr(xraylib, "__version__") else "4.3.0"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    spec, spek_version = spectra()
    files = {}
    for kvp, (k, f) in spec.items():
        path = HERE / f"spectrum_W_{kvp}kVp.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["energy_keV", "relative_fluence"])
            for e, v in zip(k, f):
                w.writerow([f"{e:.2f}", f"{v:.8e}"])
        files[path.name] = _sha256(path)
    table, xrl_version = attenuation()
    path = HERE / "attenuation.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["energy_keV"] + [f"{m}_cm2_per_g" for m in MATERIALS])
        for i, e in enumerate(ENERGIES_KEV):
            w.writerow([f"{e:.1f}"] + [f"{table[m][i]:.6e}" for m in MATERIALS])
    files[path.name] = _sha256(path)
    provenance = {
        "generator": "Resources/Physics/generate_tables.py",
        "spectra": {"package": "spekpy", "version": spek_version, "target": "W",
                    "anode_angle_deg": ANODE_ANGLE_DEG, "filtration": f"{FILTER_AL_MM} mm Al",
                    "bin_keV": 1.0, "normalisation": "sum of fluence = 1",
                    "kvp": list(KVPS),
                    "citation": "G. Poludniowski et al., SpekPy v2.0, Phys. Med. Biol. 66 (2021) 175010"},
        "attenuation": {"package": "xraylib", "version": xrl_version,
                        "quantity": "total mass attenuation incl. coherent scattering (cm^2/g)",
                        "materials": {m: {"density_g_cm3": d, "composition": c}
                                      for m, (d, c) in MATERIALS.items()},
                        "citation": "T. Schoonjans et al., Spectrochim. Acta B 66 (2011) 776-784"},
        "sha256": files,
    }
    (HERE / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
