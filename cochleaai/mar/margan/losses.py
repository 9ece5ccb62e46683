"""MARGAN losses on volumes scaled to [0, 1] (:func:`cochleaai.mar.margan.network.to_unit`).

* MSE between the corrected volume and the target;
* Retinex: single-scale Retinex splits an image into illumination (its Gaussian blur) and
  reflectance (image / illumination). The loss is the mean absolute difference between the
  output and its reflectance, divided by the mean absolute input; it pulls the output's
  illumination towards one and so keeps fine structure that MSE alone blurs. Weighted by
  ``alpha`` (5e-5, the thesis's value). The thesis leaves the Gaussian's scale unstated;
  we use sigma = 2 voxels (0.4 mm at the training spacing, about a contact's radius);
* least-squares adversarial terms: the discriminator pushes real targets to 1 and generated
  volumes to 0; the generator's term is half the squared distance of its score from 1.
"""
from __future__ import annotations

import numpy as np

ALPHA = 5e-5
SIGMA_VOXELS = 2.0
EPS = 1e-3         # keeps the division and the logarithm finite on near-zero (air) voxels


def gaussian_kernel(sigma: float):
    import torch  # lazy: installed on first use in Slicer

    r = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return torch.tensor(k / k.sum(), dtype=torch.float32)


def gaussian_blur3d(x, sigma: float = SIGMA_VOXELS):
    """Separable Gaussian blur of (N, 1, z, y, x) with edge replication (a constant stays
    constant)."""
    import torch.nn.functional as F  # lazy: installed on first use in Slicer

    k = gaussian_kernel(sigma).to(x.device, x.dtype)
    r = (k.numel() - 1) // 2
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r
        x = F.conv3d(F.pad(x, pad, mode="replicate"), k.view(shape))
    return x


def retinex_loss(output, inputs, sigma: float = SIGMA_VOXELS):
    """mean |G - exp(log G - log(G * N_sigma))| / mean |Y| (G output, Y input)."""
    import torch  # lazy: installed on first use in Slicer

    g = output.clamp(min=EPS)
    reflectance = torch.exp(torch.log(g) - torch.log(gaussian_blur3d(g, sigma).clamp(min=EPS)))
    return (output - reflectance).abs().mean() / inputs.abs().mean().clamp(min=EPS)


def mse_loss(output, target):
    return ((output - target) ** 2).mean()


def l1_loss(output, target):
    """The ablation's alternative to the MSE (thesis table 2.5)."""
    return (output - target).abs().mean()


PIXEL_LOSSES = {"mse": mse_loss, "l1": l1_loss}


def generator_adversarial(fake_score):
    return 0.5 * ((fake_score - 1.0) ** 2).mean()


def discriminator_loss(real_score, fake_score):
    return 0.5 * (((real_score - 1.0) ** 2).mean() + (fake_score ** 2).mean())
