"""Encoder and decoder networks shared by the three models, for 2D images and 3D volumes.

Both follow the thesis set-up (section 4.3): stride-2 convolutions, then a fully connected
layer to the posterior mean and log-variance; the decoder mirrors it with transposed
convolutions. The activation is ELU by default rather than the thesis's Softplus: in our
measurements (docs/vae.md) Softplus networks stayed in the collapsed state (ELBO stuck at
the mean-image value, about -205 nats on MNIST) for hundreds of steps where ELU ones
learned at once; ``activation="softplus"`` restores the thesis choice. Kernels are 3 x 3
by default, or 5 x 5 as in the thesis's MNIST set-up (Caterini et al. 2018). Spatial sizes
need not be powers of two: the encoder rounds up at each stride and the decoder crops its
output back to the data shape.

``output_bias``: a learned bias per output value added to the decoder's last layer. Started
at the average of the training data in the likelihood's parameter space (the average logit
for a Bernoulli likelihood, :meth:`ConvDecoder.start_output_bias`), it lets the decoder
give the mean image from the first step, the usual cure for an early collapse of the
posterior.
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import nn


def _conv_classes(spatial_dims: int):
    if spatial_dims == 2:
        return nn.Conv2d, nn.ConvTranspose2d
    if spatial_dims == 3:
        return nn.Conv3d, nn.ConvTranspose3d
    raise ValueError(f"only 2D images and 3D volumes are supported, got {spatial_dims} spatial dims")


ACTIVATIONS = {"elu": nn.ELU, "softplus": nn.Softplus, "relu": nn.ReLU}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def encoded_shape(spatial: Sequence[int], levels: int) -> Tuple[int, ...]:
    """Spatial shape after ``levels`` stride-2 convolutions (odd kernel k, padding k // 2): ceil(n / 2)."""
    out = tuple(int(s) for s in spatial)
    for _ in range(levels):
        out = tuple(math.ceil(s / 2) for s in out)
    return out


class ConvEncoder(nn.Module):
    """x of shape (B, C, *spatial) -> (mean, log-variance), each (B, latent_dim)."""

    def __init__(self, data_shape: Sequence[int], latent_dim: int,
                 channels: Sequence[int] = (16, 32, 32), hidden: int = 256, act: str = "elu",
                 kernel: int = 3):
        super().__init__()
        data_shape = tuple(int(s) for s in data_shape)
        conv, _ = _conv_classes(len(data_shape) - 1)
        Act = activation(act)
        kernel = _odd_kernel(kernel)
        layers, c_in = [], data_shape[0]
        for c in channels:
            layers += [conv(c_in, c, kernel_size=kernel, stride=2, padding=kernel // 2), Act()]
            c_in = c
        self.features = nn.Sequential(*layers)
        flat = c_in * math.prod(encoded_shape(data_shape[1:], len(channels)))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), Act(),
                                  nn.Linear(hidden, 2 * latent_dim))
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor):
        out = self.head(self.features(x))
        mean, log_var = out.chunk(2, dim=1)
        # keep the variance in a range where exp() and the entropy stay finite
        return mean, log_var.clamp(-12.0, 8.0)


class ConvDecoder(nn.Module):
    """z of shape (B, latent_dim) -> likelihood parameters of shape (B, C_out, *spatial)."""

    def __init__(self, data_shape: Sequence[int], latent_dim: int,
                 channels: Sequence[int] = (16, 32, 32), hidden: int = 256, out_channels: int = 1,
                 act: str = "elu", kernel: int = 3, output_bias: bool = False):
        super().__init__()
        data_shape = tuple(int(s) for s in data_shape)
        _, deconv = _conv_classes(len(data_shape) - 1)
        Act = activation(act)
        self.spatial = data_shape[1:]
        self.base = encoded_shape(self.spatial, len(channels))
        rev = list(channels)[::-1]
        self.fc = nn.Sequential(nn.Linear(latent_dim, hidden), Act(),
                                nn.Linear(hidden, rev[0] * math.prod(self.base)), Act())
        # each level exactly doubles the size: kernel 4 with padding 1, or an odd kernel k with
        # padding k // 2 and one extra row of output
        kernel = _odd_kernel(kernel)
        up = ({"kernel_size": 4, "stride": 2, "padding": 1} if kernel == 3 else
              {"kernel_size": kernel, "stride": 2, "padding": kernel // 2, "output_padding": 1})
        layers = []
        for c_in, c_out in zip(rev, rev[1:]):
            layers += [deconv(c_in, c_out, **up), Act()]
        layers.append(deconv(rev[-1], out_channels, **up))
        self.up = nn.Sequential(*layers)
        self.first_channels = rev[0]
        self.output_bias = nn.Parameter(torch.zeros(out_channels, *self.spatial)) if output_bias else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.first_channels, *self.base)
        out = self.up(h)                                    # each level doubles: >= data shape
        index = (slice(None), slice(None)) + tuple(slice(0, s) for s in self.spatial)
        out = out[index]
        return out if self.output_bias is None else out + self.output_bias

    @torch.no_grad()
    def start_output_bias(self, value: torch.Tensor) -> bool:
        """Set the output bias to ``value`` (shape of one output); False when there is none."""
        if self.output_bias is None:
            return False
        self.output_bias.copy_(value.reshape(self.output_bias.shape).to(self.output_bias))
        return True


def _odd_kernel(kernel) -> int:
    kernel = int(kernel)
    if kernel < 3 or kernel % 2 == 0:
        raise ValueError(f"the convolution kernel must be odd and at least 3, got {kernel}")
    return kernel
