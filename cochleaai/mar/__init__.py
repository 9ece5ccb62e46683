"""Metal artifact reduction of post-operative CT: MARGAN (:mod:`.margan`, a 3D GAN) and the
classic sinogram methods (:mod:`.classic`: NMAR, LI, BHC) behind one entry point,
:func:`~cochleaai.mar.dispatch.reduce_metal_artifacts`; :mod:`.quality` scores the results.
"""
from cochleaai.mar.dispatch import (DEFAULT_METHOD, DEFAULT_THRESHOLD_HU, METHODS, MarResult, default_method,
                                    reduce_metal_artifacts)

__all__ = ["DEFAULT_METHOD", "DEFAULT_THRESHOLD_HU", "METHODS", "MarResult", "default_method",
           "reduce_metal_artifacts"]
