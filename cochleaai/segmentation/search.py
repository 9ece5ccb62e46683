"""The search for good starts of the fit: the orientation the user's points leave free,
local shifts and shapes ranked by the likelihood, and a placement of the mean shape over
the whole translation range ranked by the capsule contrast."""
from __future__ import annotations

import itertools

import numpy as np

from cochleaai.segmentation import orientation
from cochleaai.segmentation.config import SegmentConfig
from cochleaai.segmentation.logistic import log_joint
from cochleaai.segmentation.pose import LANDMARK_OF_ROLE, default_box_centre
from cochleaai.segmentation.quality import CAPSULE_SHELL_MM, capsule_contrast
from cochleaai.segmentation.shapes import SHAPE_PRIOR_MEAN, CochleaShape
from cochleaai.shape import CochleaModel
from cochleaai.shape.params import with_pose
from cochleaai.shape.rotation import rotation_matrix

#: The orientation search scores every n-th fit voxel (about 4500 of a 13 mm region).
ORIENTATION_STRIDE = 8


def bounded_shape(settings: SegmentConfig, base: CochleaShape, theta) -> CochleaShape:
    """``base`` with the pose bounded around ``theta``'s (sharing its shape function, so
    the tables of the shapes already seen are reused)."""
    return base.around(theta, settings.rotation_range, settings.translation_range)


def free_orientation(points) -> bool:
    """Whether the points leave the orientation free: one centre point, or the round
    window and apex without the centre."""
    return set(points) == {"center"} or ({"apex", "round window"} <= set(points) and "center" not in points)


def search_orientation(values, points_grid, points, theta0, roi_centre) -> list:
    """The best few poses of ``theta0``'s shape for the orientation the points leave free."""
    if not points:
        return orientation.from_crop(values, points_grid, theta0, roi_centre, np.asarray(default_box_centre()))
    ref = CochleaModel(with_pose(theta0, np.zeros(6))).landmarks()     # model frame
    if set(points) == {"center"}:
        return orientation.from_centre(values, points_grid, theta0, points["center"], ref["center"])
    roles = ("round window", "apex")
    return orientation.from_points(values, points_grid, theta0,
                                   np.stack([ref[LANDMARK_OF_ROLE[r]] for r in roles]),
                                   np.stack([points[r] for r in roles]))


#: Candidate radial scales (mm) and longitudinal amplitudes (mm) of the start search: the
#: range of ``a`` and the two modes of ``alpha`` (flat and "roller-coaster" profiles).
SEARCH_A = (3.4, 3.8, 4.2, 4.6)
SEARCH_ALPHA = (0.3, 0.95)


#: Candidate shifts (mm) of the start search, along the modiolar axis and across it. Along
#: the axis the turns repeat about every 1.5 mm, so a start off by more than half of that
#: locks onto the wrong turn; no local step gets it out.
SEARCH_SHIFTS_MM = (-1.2, -0.6, 0.0, 0.6, 1.2)
#: Shifts (mm, per model axis) of the placement search with the population-mean shape: the
#: allowed translation range on a 0.75 mm grid (125 positions).
SEARCH_GRID_MM = (-1.5, -0.75, 0.0, 0.75, 1.5)
#: The start search ranks its candidates on every n-th fit voxel.
SEARCH_STRIDE = 2
#: The placement search scores every n-th fit voxel (0.4 mm grid): about 0.8 mm apart.
PLACEMENT_STRIDE = 4
#: Two starts closer than this (mm) lead to the same fit; only one is refined and fitted.
SEARCH_DISTINCT_MM = 0.5
#: Candidates are ranked on signed distances truncated this many reference lengths outside
#: the shape, where the logistic prior is saturated (sigmoid(-12) = 6e-6): points beyond
#: cost no closest-point search.
RANKING_REACH_LREF = 12.0


def best_placement(values, points, shape, theta) -> tuple:
    """The population-mean shape placed on a grid over the whole translation range around
    ``theta``, ranked by :func:`capsule_contrast` on every ``PLACEMENT_STRIDE``-th voxel:
    ``(best placement, its contrast, the contrast of theta itself)``."""
    coarse_values, coarse_points = values[::PLACEMENT_STRIDE], points[::PLACEMENT_STRIDE]
    R = rotation_matrix(theta[4:7])
    placements = [np.clip(np.concatenate([SHAPE_PRIOR_MEAN, theta[4:7], theta[7:10] + R @ np.asarray(shift),
                                          theta[10:]]), shape.lower, shape.upper)
                  for shift in itertools.product(SEARCH_GRID_MM, repeat=3)]
    # the contrast reads the shell within CAPSULE_SHELL_MM outside: truncated there, it is exact
    contrast = [capsule_contrast(coarse_values, shape.evaluate(coarse_points, c, reach=CAPSULE_SHELL_MM)[0])
                for c in placements]
    own = capsule_contrast(coarse_values, shape.evaluate(coarse_points, theta, reach=CAPSULE_SHELL_MM)[0])
    best = int(np.argmax(contrast))
    return placements[best], contrast[best], own


def search_starts(values, points, shape, theta, appearance, l_ref, placed=None, rounds: int = 1) -> list:
    """Better starts than ``theta`` (one or two), by scoring candidates with one
    evaluation each; they stay within the bounds.

    Refining is, ``rounds`` times: shifts along the modiolar axis combined with the kept
    shape or candidate radial scales and height profiles, then shifts across the axis;
    candidates are ranked by the log-likelihood at the fit's own reference length under
    the starting mixtures (at softer reference lengths a spiral lying over the vestibule
    or the internal auditory canal can outscore the cochlea itself).

    The first start is ``theta`` refined. ``placed`` is the best placement of the
    population-mean shape over the whole translation range (:func:`best_placement`,
    ranked by the capsule contrast: the likelihood picked the vestibule or the internal
    auditory canal over the cochlea on 4 of 40 phantoms, the contrast on none); when it
    lies elsewhere, it is refined and returned as a second start.
    """
    # ranking dozens of coarse candidates needs fewer voxels than the fit: every other one
    values, points = values[::SEARCH_STRIDE], points[::SEARCH_STRIDE]
    log_p0, log_p1 = appearance.log_likelihoods(values)

    def best(candidates):
        candidates = [np.clip(c, shape.lower, shape.upper) for c in candidates]
        scores = [log_joint(shape.evaluate(points, c, reach=RANKING_REACH_LREF * l_ref)[0], l_ref, log_p0, log_p1)
                  for c in candidates]
        return candidates[int(np.argmax(scores))]

    theta = np.asarray(theta, float)
    R = rotation_matrix(theta[4:7])
    across, across_axis, axis = R.T                  # the model's x, y and modiolar axes
    shapes = [np.array([a, SHAPE_PRIOR_MEAN[1], alpha, SHAPE_PRIOR_MEAN[3]])
              for a in SEARCH_A for alpha in SEARCH_ALPHA]

    def candidate(t, deformable, shift):
        # the cross-section scales (a 12-parameter model) stay as they are
        return np.concatenate([deformable, t[4:7], t[7:10] + shift, t[10:]])

    def refine(t):
        for _ in range(rounds):
            t = best([candidate(t, deformable, dz * axis)
                      for dz in SEARCH_SHIFTS_MM for deformable in [t[:4]] + shapes])
            t = best([candidate(t, t[:4], du * across + dv * across_axis)
                      for du in SEARCH_SHIFTS_MM for dv in SEARCH_SHIFTS_MM])
        return t

    starts = [refine(theta)]
    if placed is not None:
        if np.linalg.norm(placed[7:10] - starts[0][7:10]) > SEARCH_DISTINCT_MM:
            moved = refine(placed)
            if np.linalg.norm(moved[7:10] - starts[0][7:10]) > SEARCH_DISTINCT_MM:
                starts.append(moved)
    return starts

