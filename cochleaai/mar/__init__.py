"""Metal artifact reduction of post-operative CT: MARGAN (:mod:`.margan`, a 3D GAN) and the
classic sinogram methods (:mod:`.classic`: NMAR, LI, BHC) behind one entry point,
:func:`~cochleaai.mar.dispatch.reduce_metal_artifacts`; :mod:`.methods` lists them and picks the
default, :mod:`.quality` scores the results.

Import from the submodules: the package itself loads nothing, so that :mod:`.methods`
imports without torch.
"""
