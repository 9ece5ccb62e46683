"""Synthetic temporal-bone CT with ground truth: the data of every CochleaAI demo, test and
benchmark.

``make_phantom(seed, fov)`` draws a cochlea shape from :func:`sample_shape`, builds the inner
ear around it (:mod:`.anatomy`), places it in one of two fields of view, renders a CT with
partial-volume effects, blur and noise (:mod:`.render`) and returns a :class:`Phantom` with
the volume, the label masks, the landmarks and a JSON-serialisable ``truth``.

Fields of view
--------------
* ``roi``: 60 x 50 x 50 voxels (ITK order x, y, z) of 0.2 mm, identity direction, centred
  on the LPS origin; the cochlea at the template pose (model axes along the image axes, its
  bounding box centred) plus pose noise of about 2 degrees and 0.2 mm.
* ``temporal``: 140 x 140 x 100 voxels of 0.3 mm (42 x 42 x 30 mm); the inner ear
  (cochlea, vestibule, canals, IAC, otic capsule) rotated by up to 30 degrees about each
  head axis from a right-ear reference orientation and placed at random with a 2 mm
  margin, among the temporal bone, mastoid air cells, middle ear, external auditory canal,
  cranial fossae and the soft tissue and air outside the head.

Appearance (approximate textbook CT values, HU; each phantom jitters them uniformly by
the +- amount; after the appearance model of thesis section 3.3.2)
----------------------------------------------------------------------------------------
========================================  ==============
air (outside, middle ear, air cells)      -1000
soft tissue (scalp)                        40 +- 10
brain / cerebrospinal fluid (fossae)       35 +- 5
temporal bone                              600 +- 50, with a smooth texture of sd 60 HU
                                           and about 2 mm features
otic capsule (1.5 mm shell)                2000 +- 100
cochlear fluid (perilymph/endolymph)       0 +- 10
bony partition between the scalae          500 +- 50, a 0.12 mm sheet
vestibule and canal fluid                  0 +- 10
internal auditory canal content            30 +- 10
========================================  ==============

Image formation
---------------
Partial-volume coverage of every structure as on a 4x finer grid (supersampling only the
voxels within half a voxel diagonal of a boundary, with the exact signed distances; the
outer surface of the otic capsule is supersampled by trilinear interpolation of its
voxel-centre distance, and far from the cochlea that distance comes from a grid twice as
coarse), layers painted in the order bone,
fossae, scalp, outside air, ear canal, middle ear, air cells, otic capsule, IAC, vestibule
and canals, cochlea (fluid and partition); then a Gaussian point-spread function of FWHM
drawn uniformly in [0.4, 0.7] mm, white Gaussian noise of sigma drawn uniformly in
[10, 40] HU, rounding to int16. Every draw comes from ``numpy.random.SeedSequence(seed)``
(the seeding of ``numpy.random.default_rng(seed)``), split into independent streams for
shape, pose, anatomy, surroundings, intensities, imaging and noise; the same seed gives
the identical phantom.

Label masks are voxel-centre memberships (SDF > 0): "Cochlea" = scala tympani + scala
vestibuli from :meth:`CochleaModel.labels`, vestibule and canals (outside the cochlea), otic capsule (the shell
without the fluid spaces and the IAC), internal auditory canal.

The shape prior is documented in :mod:`.prior`.

Import from the submodules (``cochleaai.phantom.core.make_phantom``...): the package itself
loads nothing, so that :mod:`.options` imports without torch.
"""

#: The ear the generator builds (a right ear, in LPS).
SIDE = "right"
