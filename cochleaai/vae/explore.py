"""Exploring a trained model's latent space: decode, sample, encode, interpolate, latent map.

Used by the CLI and by the LangevinVAEExplorer module. Latent points are numpy arrays of
shape (d,) or (n, d); volumes come back as :class:`cochleaai.volume.Volume` in HU on the
model's grid (``card["data"]``), images as arrays in [0, 1].
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple

import numpy as np
import torch
from scipy.stats import norm

from cochleaai.errors import CochleaAIError
from cochleaai.io import pyplot, save_figure
from cochleaai.vae.data import VolumeGrid, volume_to_grid
from cochleaai.volume import Volume


def is_volume_model(card: dict) -> bool:
    return (card.get("data") or {}).get("kind") == "volume"


def grid_of(card: dict) -> VolumeGrid:
    if not is_volume_model(card):
        raise CochleaAIError("This model was not trained on CT volumes; load a volume model.")
    return VolumeGrid.from_dict(card["data"]["grid"])


def _latent(model, z):
    z = np.asarray(z, dtype=np.float32)
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != model.latent_dim:
        raise CochleaAIError(f"A latent point of this model has {model.latent_dim} coordinates, "
                             f"got an array of shape {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise CochleaAIError("Latent coordinates must be finite numbers.")
    param = next(model.parameters())
    return torch.from_numpy(z).to(param.device, param.dtype)


def decode(model, z) -> np.ndarray:
    """E[x | z] for each latent point: (n, *spatial) (normalised values or probabilities)."""
    out = model.decode_mean(_latent(model, z))
    return out[:, 0].detach().cpu().numpy()


def decode_volume(model, card: dict, z, center=(0.0, 0.0, 0.0), direction=None) -> Volume:
    """One latent point -> a Volume in HU on the model grid, centred on ``center`` (LPS mm)."""
    grid = grid_of(card)
    return grid.volume(decode(model, z)[0], center, direction)


def sample_latent(model, n: int = 1, seed: int = 0) -> np.ndarray:
    """n draws from the prior N(0, I)."""
    if n < 1:
        raise CochleaAIError("Ask for at least one sample.")
    return np.random.default_rng(int(seed)).standard_normal((int(n), model.latent_dim)).astype(np.float32)


def encode_array(model, x: np.ndarray, samples: int = 0, seed: int = 0) -> np.ndarray:
    """Latent coordinates for normalised data x of shape (n, *spatial).

    ``samples=0`` (default): the encoder mean, the usual VAE encoding. ``samples > 0``: the mean
    of z_K over that many flow draws. The flow refinement is a sampler for the likelihood
    estimate, not a point estimate: on a clean, noise-free input its steep gradients (a
    Gaussian likelihood over thousands of voxels) can throw single draws far away, so the
    explorer uses the encoder mean.
    """
    param = next(model.parameters())
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1).to(param.device)
    if samples <= 0:
        with torch.no_grad():
            return model.encoder(t)[0].cpu().numpy()
    generator = torch.Generator(device=param.device).manual_seed(int(seed))
    return model.posterior_mean(t, samples, generator).detach().cpu().numpy()


def encode_volume(model, card: dict, volume: Volume, samples: int = 0, seed: int = 0) -> np.ndarray:
    """Latent coordinates (d,) of a CT volume (resampled onto the model grid; input untouched)."""
    x = volume_to_grid(volume, grid_of(card))
    return encode_array(model, x[None], samples, seed)[0]


#: A volume whose reconstruction misses more than this share of its own spread (RMS of the
#: difference over the standard deviation, on the model grid) lies outside what the model has
#: learnt. Phantoms the shipped model never saw (seeds 140-149) score 0.30 to 0.47; noise or a
#: volume flipped upside down score 1.1 and above (``vae encode``); a constant volume is refused.
OUT_OF_DOMAIN_MISMATCH = 0.8


def reconstruction_mismatch(model, card: dict, volume: Volume, z) -> float:
    """How much of ``volume`` (on the model grid) its reconstruction from ``z`` misses: the
    RMS difference over the volume's standard deviation (0: perfect; 1: no better than its mean)."""
    x = volume_to_grid(volume, grid_of(card))
    difference = x - decode(model, z)[0]
    return float(np.sqrt(np.mean(difference ** 2)) / max(float(np.std(x)), 1e-6))


def interpolate(z_a, z_b, steps: int = 8) -> np.ndarray:
    """``steps`` points on the straight line from z_a to z_b (both ends included)."""
    if steps < 2:
        raise CochleaAIError("An interpolation needs at least 2 steps.")
    z_a, z_b = np.asarray(z_a, dtype=np.float32), np.asarray(z_b, dtype=np.float32)
    if z_a.shape != z_b.shape:
        raise CochleaAIError("Both latent points must have the same size.")
    w = np.linspace(0.0, 1.0, int(steps), dtype=np.float32)[:, None]
    return (1 - w) * z_a[None] + w * z_b[None]


def latent_grid_coordinates(n: int = 7, quantile: float = 0.05) -> np.ndarray:
    """Coordinates along one latent axis: normal quantiles from ``quantile`` to ``1 - quantile``,
    so that the tiles cover the prior evenly in probability (as in Kingma & Welling 2014)."""
    return norm.ppf(np.linspace(quantile, 1 - quantile, int(n))).astype(np.float32)


def middle_slice(array: np.ndarray, axis: str = "axial") -> np.ndarray:
    """The middle slice of a (z, y, x) array, or a 2D image unchanged."""
    if array.ndim == 2:
        return array
    index = {"axial": 0, "coronal": 1, "sagittal": 2}[axis]
    return np.take(array, array.shape[index] // 2, axis=index)


def latent_map(model, card: dict, n: int = 7, dims: Tuple[int, int] = (0, 1),
               axis: str = "axial", base=None) -> Tuple[np.ndarray, np.ndarray]:
    """A mosaic of decoded middle slices over a grid of two latent coordinates.

    Returns ``(mosaic, coordinates)``: the mosaic (n * h, n * w) in HU for volume models
    (probabilities for images), row r / column c decoded at
    ``z[dims[1]] = coordinates[n - 1 - r]`` (up is positive) and ``z[dims[0]] = coordinates[c]``;
    other coordinates are taken from ``base`` (default 0).
    """
    if model.latent_dim < 2 and dims[1] != dims[0]:
        dims = (0, 0)
    coords = latent_grid_coordinates(n)
    base = np.zeros(model.latent_dim, np.float32) if base is None else np.asarray(base, np.float32)
    points = []
    for r in range(n):
        for c in range(n):
            z = base.copy()
            z[dims[0]] = coords[c]
            z[dims[1]] = coords[n - 1 - r]
            points.append(z)
    decoded = decode(model, np.stack(points))
    tiles = [middle_slice(d, axis) for d in decoded]
    h, w = tiles[0].shape
    mosaic = np.zeros((n * h, n * w), np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, n)
        mosaic[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    if is_volume_model(card):
        mosaic = grid_of(card).to_hu(mosaic)
    return mosaic, coords


def save_latent_map_png(mosaic: np.ndarray, coords: np.ndarray, path, title: str = "",
                        hu_window: Sequence[float] = (-1000, 2500)) -> Path:
    """Write the latent map as a PNG with its latent axes labelled."""
    plt = pyplot()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(coords)
    fig, ax = plt.subplots(figsize=(7, 7 * mosaic.shape[0] / mosaic.shape[1] + 0.6))
    is_hu = mosaic.max() > 2.0 or mosaic.min() < -0.5
    vmin, vmax = (hu_window if is_hu else (0.0, 1.0))
    ax.imshow(mosaic, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    h, w = mosaic.shape[0] / n, mosaic.shape[1] / n
    ax.set_xticks((np.arange(n) + 0.5) * w, [f"{c:.2f}" for c in coords])
    ax.set_yticks((np.arange(n) + 0.5) * h, [f"{c:.2f}" for c in coords[::-1]])
    ax.set_xlabel("latent z1")
    ax.set_ylabel("latent z2")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
