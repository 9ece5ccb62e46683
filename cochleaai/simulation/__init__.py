"""Cochlear-implant CT from X-ray physics (thesis chapter 2, section 2.2).

* :mod:`.electrodes`: array catalogue and insertion along the scala tympani;
* :mod:`.physics`: stored spectra and attenuation tables, HU -> materials;
* :mod:`.projector`: fan-beam projector and FBP of a ROI inside an analytic head;
* :mod:`.chords`: exact metal path lengths per detector sub-ray;
* :mod:`.ct`: polychromatic scan with scatter and noise, post-op simulation, and the 15-mm
  cube around the cochlea that it is run on (:func:`~.ct.simulation_roi`);
* :mod:`.scanner_draw` and :mod:`.pairs`: scanner settings drawn per pair and the MARGAN
  training sets.
"""
from cochleaai.simulation.ct import (SIMULATION_BOX_MM, PostopSimulation, ScanConfig, simulate_postop, simulate_scan,
                                     simulation_roi)
from cochleaai.simulation.electrodes import ARRAYS, DEFAULT_ARRAY, ElectrodeArray, Insertion, get_array, insert_array

__all__ = ["ARRAYS", "DEFAULT_ARRAY", "ElectrodeArray", "Insertion", "get_array", "insert_array",
           "PostopSimulation", "ScanConfig", "simulate_postop", "simulate_scan", "SIMULATION_BOX_MM",
           "simulation_roi"]
