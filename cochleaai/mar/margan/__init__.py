"""MARGAN: a 3D GAN that removes cochlear-implant metal artifacts from post-operative CT.

A 3D U-Net generator (:mod:`.network`) predicts the artifact of a post-op volume, which is
subtracted; a small 3D convolutional discriminator judges whether a volume still shows
artifacts. Training (:mod:`.train`) uses simulated pairs (:mod:`cochleaai.simulation.pairs`) and
the losses of :mod:`.losses` (MSE + alpha Retinex + least-squares adversarial); inference
(:mod:`.inference`) runs whole training-size volumes, or overlapping tiles around the metal
of larger ones. Model files: :mod:`.model_io`.
"""
