"""The segmentation's choices: the ear sides, the label maps, the roles of the user's points,
and how a run's progress is shared.

Plain Python (no torch), so the Slicer panel shows them before the optional packages are
installed; :class:`~cochleaai.segmentation.config.SegmentConfig` and
:mod:`~cochleaai.segmentation.pose` check their inputs against the same tables.
"""
SIDES = ("right", "left")
LABEL_MAPS = ("lumen-wall", "shape-model")
#: The points a user may give, in the order the panel asks for them.
POINT_ROLES = ("center", "apex", "round window")
#: Share of a segmentation run's progress spent in the fit; the rest builds its results
#: (the scene nodes in Slicer).
FIT_SHARE = 0.9
