"""Metal artifact reduction of post-operative CT: MARGAN (:mod:`.margan`, a 3D GAN) and the
classic sinogram methods (:mod:`.classic`: NMAR, LI, BHC) behind one entry point,
:func:`~cochleaai.mar.dispatch.reduce_metal_artifacts`; :mod:`.methods` lists them and picks the
default, :mod:`.quality` scores the results.
"""
from cochleaai.exports import lazy_exports

# loaded on first use: ``cochleaai.mar.methods`` must import without torch
__getattr__, __dir__ = lazy_exports(__name__, {
    "DEFAULT_METHOD": "methods", "DEFAULT_THRESHOLD_HU": "methods", "METHODS": "methods",
    "default_method": "methods", "MarResult": "dispatch", "reduce_metal_artifacts": "dispatch"})

__all__ = ["DEFAULT_METHOD", "DEFAULT_THRESHOLD_HU", "METHODS", "MarResult", "default_method",
           "reduce_metal_artifacts"]
