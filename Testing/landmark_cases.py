"""Small landmark-detection cases shared by the tests of the core and of the module Logic:
balls in air, a reference and a validation volume, and the smallest training settings."""
from __future__ import annotations

import numpy as np

from cochleaai.landmarks.training import TrainConfig
from cochleaai.landmarks.unet import UNetConfig
from cochleaai.markups import Markups
from cochleaai.volume import Volume


def blobs(volume: Volume, centres, radii, value=2000.0):
    """Balls of ``value`` HU in air (-1000) at LPS ``centres``; also returns the mask."""
    pts = volume.physical_grid()
    mask = np.zeros(volume.shape, bool)
    for c, r in zip(centres, radii):
        mask |= np.linalg.norm(pts - np.asarray(c), axis=-1) <= r
    return volume.copy(np.where(mask, value, -1000.0).astype(np.float32)), mask


def tiny_case():
    grid = Volume.empty((40, 40, 40), 0.5, (-10, -10, -10))
    ref, ref_mask = blobs(grid, [[0, 0, 0], [3.0, 1.0, 0.0]], [2.5, 1.5])
    val, val_mask = blobs(grid, [[1, -1, 0.5], [4.0, 0.0, 0.5]], [2.4, 1.6])
    lm = Markups(np.array([[0.0, 0.0, 2.5], [3.0, 1.0, 0.0]]), ["top", "knob"])
    return ref, ref_mask, lm, val, val_mask


TINY = TrainConfig(slice_size=32, slice_spacing=0.5, batch_size=8, max_steps=20, validate_every=10, learning_rate=0.01,
                   patience=5, patch_mm=10.0, patch_spacing=0.5,
                   network=UNetConfig(channels=4, depth_channels=8, convs_down=1, convs_bottom=1, convs_up=1))
