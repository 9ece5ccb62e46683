"""Cochlear-implant CT from X-ray physics (thesis chapter 2, section 2.2).

* :mod:`.arrays`: the electrode-array catalogue; :mod:`.electrodes`: insertion along the scala tympani;
* :mod:`.physics`: stored spectra and attenuation tables, HU -> materials;
* :mod:`.projector`: fan-beam projector and FBP of a ROI inside an analytic head;
* :mod:`.chords`: exact metal path lengths per detector sub-ray;
* :mod:`.ct`: polychromatic scan with scatter and noise, post-op simulation, and the 15-mm
  cube around the cochlea that it is run on (:func:`~.ct.simulation_roi`);
* :mod:`.scanner_draw` and :mod:`.pairs`: scanner settings drawn per pair and the MARGAN
  training sets.
"""
from cochleaai.exports import lazy_exports

# loaded on first use: ``cochleaai.simulation.arrays`` must import without torch
__getattr__, __dir__ = lazy_exports(__name__, {
    "ARRAYS": "arrays", "DEFAULT_ARRAY": "arrays", "ElectrodeArray": "arrays", "get_array": "arrays",
    "Insertion": "electrodes", "insert_array": "electrodes", "PostopSimulation": "ct", "ScanConfig": "ct",
    "simulate_postop": "ct", "simulate_scan": "ct", "SIMULATION_BOX_MM": "ct", "simulation_roi": "ct"})

__all__ = ["ARRAYS", "DEFAULT_ARRAY", "ElectrodeArray", "Insertion", "get_array", "insert_array",
           "PostopSimulation", "ScanConfig", "simulate_postop", "simulate_scan", "SIMULATION_BOX_MM",
           "simulation_roi"]
