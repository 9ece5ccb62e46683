"""Datasets: binarised MNIST from a path, and CT volumes (phantoms or files) on a model grid.

MNIST (``../shared/data/mnist/README.md``): intensities / 255 in [0, 1]; training uses
dynamic binarisation (a new Bernoulli draw per pixel at every epoch, see ``train.py``), the
test likelihood one fixed, seeded draw (:func:`binarize`).

Volumes: a model works on a fixed grid (``VolumeGrid``: shape (z, y, x) and spacing in mm).
A volume is resampled onto that grid around its own centre, keeping its orientation; when
the grid is coarser, the volume is first smoothed with a Gaussian whose sigma is half the
new spacing, so downsampling does not alias. Values are normalised HU,
``(HU - offset) / scale`` (default offset 1000, scale 1000: fluid near -1, otic capsule near 1).
Phantom datasets are cached per seed as ``.npy`` files.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from cochleaai import io
from cochleaai.errors import CochleaAIError
from cochleaai.io import read_volume
from cochleaai.io.outputs import written_whole
from cochleaai.phantom.core import make_phantom
from cochleaai.progress import Progress
from cochleaai.volume import Volume


# --------------------------------------------------------------------------- MNIST
def load_mnist(path, split: str = "train", limit: Optional[int] = None):
    """MNIST images of ``split`` ("train" or "test") as a float tensor (N, 1, 28, 28) in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise CochleaAIError(f"MNIST file '{path}' not found; pass the path of mnist.npz "
                             "(from the project root: ../shared/data/mnist/mnist.npz).")
    if split not in ("train", "test"):
        raise CochleaAIError(f"Unknown MNIST split {split!r}; use 'train' or 'test'.")
    try:
        with np.load(path) as archive:
            images = archive[f"x_{split}"]
    except (OSError, KeyError, ValueError) as exc:
        raise CochleaAIError(f"'{path}' is not the MNIST archive described in its README "
                             f"(x_train, x_test arrays): {exc}.") from exc
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CochleaAIError(f"MNIST images must be N x 28 x 28, got {images.shape}.")
    if limit is not None:
        images = images[:int(limit)]
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)


def binarize(images, seed: int = 0):
    """One fixed Bernoulli draw per pixel (probability = intensity), seeded."""
    return torch.bernoulli(images, generator=torch.Generator().manual_seed(int(seed)))


# --------------------------------------------------------------------------- volumes
@dataclass
class VolumeGrid:
    """The grid a volume model works on: array shape (z, y, x), isotropic spacing, HU scaling."""

    shape: Tuple[int, int, int] = (25, 25, 30)
    spacing_mm: float = 0.4
    hu_offset: float = 1000.0
    hu_scale: float = 1000.0

    def __post_init__(self):
        self.shape = tuple(int(s) for s in self.shape)
        if len(self.shape) != 3 or min(self.shape) < 4:
            raise CochleaAIError(f"A volume grid needs 3 sizes of at least 4, got {self.shape}.")
        if not self.spacing_mm > 0 or not self.hu_scale > 0:
            raise CochleaAIError("Grid spacing and HU scale must be positive.")

    @property
    def extent_mm(self) -> np.ndarray:
        return np.asarray(self.shape[::-1], dtype=float) * self.spacing_mm

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VolumeGrid":
        return cls(tuple(d["shape"]), float(d["spacing_mm"]), float(d.get("hu_offset", 1000.0)),
                   float(d.get("hu_scale", 1000.0)))

    def key(self) -> str:
        text = f"{self.shape}-{self.spacing_mm}-{self.hu_offset}-{self.hu_scale}"
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    def normalise(self, hu: np.ndarray) -> np.ndarray:
        return ((np.asarray(hu, dtype=np.float32) - self.hu_offset) / self.hu_scale).astype(np.float32)

    def to_hu(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float32) * self.hu_scale + self.hu_offset).astype(np.float32)

    def volume(self, values: np.ndarray, center=(0.0, 0.0, 0.0), direction=None) -> Volume:
        """A Volume (float32 HU) of normalised ``values`` on this grid, centred on ``center`` (LPS)."""
        direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
        sp = np.full(3, self.spacing_mm)
        n = np.asarray(self.shape[::-1], dtype=float)
        origin = np.asarray(center, dtype=float) - direction @ (sp * (n - 1) / 2.0)
        return Volume(self.to_hu(values), sp, origin, direction)


def volume_to_grid(volume: Volume, grid: VolumeGrid) -> np.ndarray:
    """Normalised float32 array of ``grid.shape``: the volume resampled around its centre.

    The input is not modified. Refuses NaN, non-numeric voxels and volumes much smaller
    than the grid's field of view.
    """
    if not isinstance(volume, Volume):
        raise CochleaAIError(f"Expected a Volume, got {type(volume).__name__}.")
    arr = volume.checked_array("volume", image=True)
    extent = np.asarray(volume.size, dtype=float) * volume.spacing
    if np.any(extent < 0.5 * grid.extent_mm):
        raise CochleaAIError(
            f"The volume covers {np.round(extent, 1).tolist()} mm, less than half of the model's "
            f"field of view {np.round(grid.extent_mm, 1).tolist()} mm; crop a larger region "
            "around the cochlea (about 12 x 10 x 10 mm).")
    source = volume.copy(arr.astype(np.float32))
    coarser = grid.spacing_mm > 1.5 * float(np.min(volume.spacing))
    if coarser:
        image = sitk.SmoothingRecursiveGaussian(source.to_sitk(), 0.5 * grid.spacing_mm)
        source = Volume.from_sitk(image)
    # crop_mm gives exactly grid.shape (extent / spacing rounds back to the voxel counts)
    # and fills what lies outside the image with the default value: no padding step needed
    fill = float(np.percentile(arr, 1))
    resampled = source.crop_mm(volume.center, grid.extent_mm, spacing=grid.spacing_mm,
                               default_value=fill)
    return grid.normalise(resampled.array)


def default_cache_dir() -> Path:
    root = os.environ.get("COCHLEAAI_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cochleaai")
    return Path(root) / "vae"


def phantom_dataset(seeds: Sequence[int], grid: VolumeGrid, cache_dir=None,
                    progress=None) -> np.ndarray:
    """Normalised roi phantoms on ``grid``, shape (N, z, y, x); cached per seed on disk."""
    p = Progress.wrap(progress)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = None                                     # read-only home: no cache
    out = []
    seeds = [int(s) for s in seeds]
    for i, seed in enumerate(seeds):
        p(i / max(len(seeds), 1), f"phantom {i + 1}/{len(seeds)} (seed {seed})")
        path = cache / f"roi_{seed}_{grid.key()}.npy" if cache is not None else None
        if path is not None and path.is_file():
            try:
                arr = np.load(path)
                if arr.shape == grid.shape:
                    out.append(arr)
                    continue
            except (OSError, ValueError):
                pass

        arr = volume_to_grid(make_phantom(seed, fov="roi").ct, grid)
        if path is not None:
            try:
                with written_whole(path) as partial:
                    np.save(partial, arr)
            except (OSError, CochleaAIError):
                pass
        out.append(arr)
    p(1.0, "phantoms ready")
    return np.stack(out) if out else np.zeros((0,) + grid.shape, np.float32)


def volume_files(folder) -> List[Path]:
    """Volume files (NRRD, NIfTI, MetaImage) directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CochleaAIError(f"'{folder}' is not a folder; choose the folder that holds the volumes.")
    files = io.volume_files(folder)
    if not files:
        raise CochleaAIError(f"No volume files ({', '.join(io.VOLUME_EXTENSIONS)}) in '{folder}'.")
    return files


def volumes_to_grid(volumes: Sequence[Volume], grid: VolumeGrid, progress=None) -> np.ndarray:
    """Stack of normalised arrays (N, z, y, x). Volumes of other sizes or spacings are resampled."""
    p = Progress.wrap(progress)
    out = []
    for i, v in enumerate(volumes):
        p(i / max(len(volumes), 1), f"resampling volume {i + 1}/{len(volumes)}")
        out.append(volume_to_grid(v, grid))
    p(1.0, "volumes ready")
    if not out:
        raise CochleaAIError("No volumes given; select or load at least two volumes to train on.")
    return np.stack(out)


def read_folder(folder, grid: VolumeGrid, progress=None) -> np.ndarray:
    p = Progress.wrap(progress)
    files = volume_files(folder)
    volumes = []
    for i, f in enumerate(files):
        p(0.5 * i / len(files), f"reading {f.name}")
        volumes.append(read_volume(f))
    return volumes_to_grid(volumes, grid, p.stage(0.5, 1.0))
