"""Other scanners, simulated from a development scan: clinical CT with coarser voxels and
cone-beam CT with grey values that are not HU (``bench segment-versions``).

A version re-images a scan: the scanner's blur grows to the new voxel size (a Gaussian that
takes the scan's own point spread, about one voxel wide, to one new voxel at half maximum),
the image is sampled on the coarser grid of the same field of view, then the grey values
are mapped linearly, shaded by a ramp across the field of view and given Gaussian noise.
The same blur and grid turn the expert label into the best answer any method could give on
that grid (:func:`label_through_grid`): the ceiling beside the methods' Dice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cochleaai.volume import Volume

#: Full width at half maximum of a Gaussian, in standard deviations.
FWHM_PER_SD = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class ScanVersion:
    name: str
    spacing_mm: tuple                 # x, y, z
    noise: float                      # sd of the added noise, in the version's grey values
    grey_scale: float = 1.0           # grey = grey_scale * HU + grey_offset
    grey_offset: float = 0.0
    shading: float = 0.0              # the ramp's rise across the field of view (grey values)


#: The versions the benchmark runs. Clinical CT of the temporal bone: 0.3 x 0.3 x 0.6 mm and
#: 0.5 mm voxels. Cone-beam CT: 0.25 mm voxels, grey values that are not HU (a linear map
#: of the attenuation), a shading ramp (scatter and beam hardening vary over the field of
#: view) and more noise.
VERSIONS = (ScanVersion("clinical 0.3 x 0.3 x 0.6 mm", (0.3, 0.3, 0.6), noise=60.0),
            ScanVersion("clinical 0.5 mm", (0.5, 0.5, 0.5), noise=60.0),
            ScanVersion("cone-beam-like 0.25 mm", (0.25, 0.25, 0.25), noise=45.0, grey_scale=0.35,
                        grey_offset=400.0, shading=250.0))


def coarse_grid(volume: Volume, spacing_mm) -> Volume:
    """An empty grid over ``volume``'s field of view with voxels of ``spacing_mm``."""
    spacing = np.asarray(spacing_mm, float)
    extent = np.asarray(volume.size) * volume.spacing
    size = np.maximum(1, np.floor(extent / spacing)).astype(int)
    first = volume.index_to_physical(-0.5 + 0.5 * spacing / volume.spacing)
    return Volume.empty(size[::-1], spacing, first, volume.direction)


def blur_and_sample(volume: Volume, spacing_mm) -> Volume:
    """``volume`` seen by a scanner with voxels of ``spacing_mm``: blurred to their size, then
    sampled on their grid (float32)."""
    old, new = volume.spacing, np.asarray(spacing_mm, float)
    sd_mm = np.sqrt(np.clip(new ** 2 - old ** 2, 0.0, None)) / FWHM_PER_SD
    blurred = ndimage.gaussian_filter(volume.array.astype(np.float32), (sd_mm / old)[::-1], mode="nearest")
    return volume.copy(blurred).resample_like(coarse_grid(volume, new), "linear")


def degrade(ct: Volume, version: ScanVersion, rng: np.random.Generator) -> Volume:
    """``ct`` (HU) re-imaged as ``version``; the input is not changed."""
    out = blur_and_sample(ct, version.spacing_mm)
    grey = version.grey_scale * out.array + version.grey_offset
    if version.shading:
        ramp = np.linspace(-0.5, 0.5, grey.shape[2], dtype=np.float32)      # along x
        grey = grey + version.shading * ramp[None, None, :]
    grey = grey + rng.normal(0.0, version.noise, grey.shape).astype(np.float32)
    return out.copy(grey.astype(np.float32))


def label_through_grid(mask: Volume, spacing_mm) -> Volume:
    """A binary ``mask`` through the same blur and grid: voxels at least half inside."""
    seen = blur_and_sample(mask.copy((mask.array > 0).astype(np.float32)), spacing_mm)
    return seen.copy((seen.array >= 0.5).astype(np.uint8))
