"""Cochlear-implant CT: electrode arrays, X-ray physics simulation, classic metal artifact
reduction (thesis chapter 2, sections 2.2 and 2.4).

* :mod:`.electrodes`: array catalogue and insertion along the scala tympani;
* :mod:`.physics`: stored spectra and attenuation tables, HU -> materials;
* :mod:`.projector`: fan-beam projector and FBP of a ROI inside an analytic head;
* :mod:`.simulation`: polychromatic scan with scatter and noise, post-op simulation, and the
  15-mm cube around the cochlea that it is run on (:func:`~.simulation.simulation_roi`);
* :mod:`.mar`: LI, NMAR and BHC from the image alone; :mod:`.contacts`: contact detection.
"""
from .electrodes import ARRAYS, DEFAULT_ARRAY, ElectrodeArray, Insertion, get_array, insert_array
from .mar import DEFAULT_METHOD, METHODS, MarResult, reduce_metal_artifacts
from .simulation import (SIMULATION_BOX_MM, PostopSimulation, ScanConfig, simulate_postop, simulate_scan,
                         simulation_roi)

__all__ = ["ARRAYS", "DEFAULT_ARRAY", "ElectrodeArray", "Insertion", "get_array", "insert_array",
           "DEFAULT_METHOD", "METHODS", "MarResult", "reduce_metal_artifacts",
           "PostopSimulation", "ScanConfig", "simulate_postop", "simulate_scan", "SIMULATION_BOX_MM",
           "simulation_roi"]
