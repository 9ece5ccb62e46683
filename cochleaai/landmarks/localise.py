"""Online structure localisation: iterative centre of mass (thesis Algorithm 4).

The network segments every slice of a cube of the target in the three orthogonal
orientations; the three probability maps are multiplied voxel by voxel (Eq. 5.1), so a
voxel counts only where all three views agree, and the centre of mass of that product
(Eq. 5.2) is the new centre. The cube is re-centred there and the step repeats until
the centre moves less than ``tol_mm``: the network sees slices more and more like its
training slices, which were centred on the structure.

Two additions for robustness, both documented in docs/landmarks.md: the first pass
runs on the whole image (the network is fully convolutional), so the structure need
not be near the image centre; and each centre of mass is taken over the connected
component of the product map with the largest probability mass, so a distant false
positive cannot pull the centre away.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch
from scipy import ndimage

from cochleaai.errors import CochleaAIError
from cochleaai.landmarks.patches import normalise, orthogonal_stacks, sample_patch
from cochleaai.progress import Progress
from cochleaai.volume import Volume

#: Product-map level that counts as "structure" when picking the connected component.
FOUND_LEVEL = 0.3
#: Largest box side (voxels) of the first, whole-image pass.
MAX_GLOBAL_VOXELS = 160


class StructureNotFound(CochleaAIError):
    """The network found no structure of interest in the target."""


@dataclass
class Localisation:
    centre: np.ndarray                 # LPS mm
    probability: Volume                # joint probability on the last cube
    weights: np.ndarray                # the product map restricted to the chosen component
    iterations: int
    converged: bool
    path: List[list] = field(default_factory=list)
    peak: float = 0.0


def probability_maps(net, cube: np.ndarray) -> list:
    """The network's probability on the three slice stacks of ``cube`` (normalised,
    ``(z, y, x)``), each returned on the cube's ``(z, y, x)`` grid."""
    return [probability_map(net, cube, o) for o in range(3)]


def joint_probability(net, cube: np.ndarray, stride: int = 1) -> np.ndarray:
    """Eq. 5.1: the voxel-wise product of the three orientations' probabilities.

    ``stride`` > 1 evaluates every ``stride``-th slice of each stack only (slices keep
    their full resolution, so the network sees its training scale) and returns the
    product on the grid ``cube[::stride, ::stride, ::stride]``: a cheaper first look."""
    if stride == 1:
        a, b, c = probability_maps(net, cube)
        return a * b * c
    s = stride
    sub = cube[::s, :, :], cube[:, ::s, :], cube[:, :, ::s]
    pz = probability_map(net, sub[0], 0)[:, ::s, ::s]
    py = probability_map(net, sub[1], 1)[::s, :, ::s]
    px = probability_map(net, sub[2], 2)[::s, ::s, :]
    return pz * py * px


#: axes order that turns a stack of :func:`orthogonal_stacks` back into (z, y, x)
_BACK = [(0, 1, 2), (1, 0, 2), (1, 2, 0)]


def probability_map(net, cube: np.ndarray, orientation: int, chunk: int = 32) -> np.ndarray:
    """The network's probability on one slice stack of ``cube`` (0: axial, 1: coronal,
    2: sagittal), returned on the cube's ``(z, y, x)`` grid."""
    stack = orthogonal_stacks(cube)[orientation]
    out = np.empty(stack.shape, dtype=np.float32)
    with torch.no_grad():
        for s in range(0, stack.shape[0], chunk):
            x = torch.from_numpy(np.ascontiguousarray(stack[s:s + chunk, None], dtype=np.float32))
            out[s:s + chunk] = torch.sigmoid(net(x))[:, 0].numpy()
    return np.transpose(out, _BACK[orientation])


def _component_weights(p: np.ndarray) -> np.ndarray:
    """``p`` kept only on (a 2-voxel neighbourhood of) its strongest connected component."""
    labels, count = ndimage.label(p > FOUND_LEVEL)
    if count == 0:
        return np.zeros_like(p)
    mass = ndimage.sum(p, labels, index=np.arange(1, count + 1))
    keep = labels == (int(np.argmax(mass)) + 1)
    keep = ndimage.binary_dilation(keep, iterations=2)
    return np.where(keep, p, 0.0).astype(np.float32)


def _even(n: float) -> int:
    return int(max(16, 2 * int(np.ceil(n / 2.0))))


def _centre_of_mass(box: Volume, weights: np.ndarray) -> np.ndarray:
    idx = np.argwhere(weights > 0)
    w = weights[weights > 0].astype(float)
    ijk = (idx[:, ::-1] * w[:, None]).sum(0) / w.sum()
    return box.index_to_physical(ijk)


def localise(model, image, target: Volume, start=None, max_iterations: int = 8, tol_mm: float = 0.25,
             global_pass: bool = True, progress=None) -> Localisation:
    """Find the structure's centre in ``target`` (``image`` is its SimpleITK form).

    Raises :class:`StructureNotFound` when no voxel of the product map reaches
    :data:`FOUND_LEVEL`. ``converged`` is False when ``max_iterations`` passes did not
    bring the step below ``tol_mm``.
    """
    p = Progress.wrap(progress)
    net, n, h = model.net, model.slice_size, model.slice_spacing
    axes = target.direction
    default = model.window[0]
    net.eval()
    centre = target.center if start is None else np.asarray(start, float)
    path = []
    if global_pass:
        p(0.0, "Looking for the structure in the whole image")
        extent = np.asarray(target.size) * target.spacing
        size = [min(_even(e / h), MAX_GLOBAL_VOXELS) for e in extent]
        box = sample_patch(image, centre, axes, size, h, default)
        # every other slice of each stack: the product on a grid twice as coarse
        prob = joint_probability(net, normalise(box.array, model.window), stride=2)
        box = Volume(prob, 2 * h, box.origin, box.direction)
        weights = _component_weights(prob)
        if not weights.any():
            raise StructureNotFound(
                f"No {model.structure} was found in this image (the network's three views never "
                "agree). Check that the image shows the structure, in the same modality and "
                "intensity scale as the reference.")
        centre = _centre_of_mass(box, weights)
        path.append(centre.tolist())
    converged = False
    iterations = 0
    box, prob, weights = None, None, None
    for it in range(max_iterations):
        p((it + 1) / (max_iterations + 1), f"Centre of mass, pass {it + 1}")
        box = sample_patch(image, centre, axes, n, h, default)
        prob = joint_probability(net, normalise(box.array, model.window))
        weights = _component_weights(prob)
        iterations = it + 1
        if not weights.any():
            raise StructureNotFound(
                f"The {model.structure} was lost while re-centring (no agreement of the three views); "
                "the image may not show it, or differ too much from the reference.")
        new = _centre_of_mass(box, weights)
        step = float(np.linalg.norm(new - centre))
        centre = new
        path.append(centre.tolist())
        if step < tol_mm:
            converged = True
            break
    p(1.0, "Structure located")
    return Localisation(centre=centre, probability=box.copy(prob), weights=weights, iterations=iterations,
                        converged=converged, path=path, peak=float(prob.max()))
