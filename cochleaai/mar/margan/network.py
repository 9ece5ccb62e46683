"""MARGAN networks: a 3D U-Net generator that predicts the artifact, and a small 3D discriminator.

Intensities are scaled to [0, 1] over the scanner range (:func:`to_unit`). The generator
returns the corrected volume ``input - artifact``, so an untrained or near-zero network
leaves the input as it is. Group normalisation instead of batch normalisation: training
runs on batches of one whole volume, where batch statistics are those of one image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

HU_LOW, HU_HIGH = -1024.0, 3071.0


def to_unit(hu):
    """HU -> [0, 1] over the scanner range (positive, as the Retinex loss needs)."""
    return (hu - HU_LOW) / (HU_HIGH - HU_LOW)


def from_unit(x):
    return x * (HU_HIGH - HU_LOW) + HU_LOW


@dataclass(frozen=True)
class GeneratorConfig:
    channels: Tuple[int, ...] = (16, 32, 64)   # per level; len = levels
    groups: int = 4

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "groups": self.groups}

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        return cls(tuple(int(c) for c in d["channels"]), int(d.get("groups", 4)))


def _block(torch_nn, cin: int, cout: int, groups: int):
    nn = torch_nn
    g = max(1, min(groups, cout))
    while cout % g:
        g -= 1
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.GroupNorm(g, cout), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv3d(cout, cout, 3, padding=1), nn.GroupNorm(g, cout), nn.LeakyReLU(0.1, inplace=True))


def build_generator(config: GeneratorConfig = GeneratorConfig()):
    import torch  # lazy: installed on first use in Slicer
    from torch import nn  # lazy: installed on first use in Slicer

    class UNet3D(nn.Module):
        def __init__(self):
            super().__init__()
            ch = config.channels
            self.config = config
            self.down = nn.ModuleList([_block(nn, 1 if k == 0 else ch[k - 1], ch[k], config.groups)
                                       for k in range(len(ch))])
            self.pool = nn.MaxPool3d(2)
            self.up = nn.ModuleList([nn.ConvTranspose3d(ch[k], ch[k - 1], 2, stride=2)
                                     for k in range(len(ch) - 1, 0, -1)])
            self.merge = nn.ModuleList([_block(nn, 2 * ch[k - 1], ch[k - 1], config.groups)
                                        for k in range(len(ch) - 1, 0, -1)])
            self.head = nn.Conv3d(ch[0], 1, 1)
            nn.init.zeros_(self.head.weight)          # start as the identity: no artifact predicted
            nn.init.zeros_(self.head.bias)

        def artifact(self, x):
            skips = []
            for k, block in enumerate(self.down):
                x = block(x if k == 0 else self.pool(x))
                skips.append(x)
            x = skips.pop()
            for up, merge in zip(self.up, self.merge):
                x = merge(torch.cat([up(x), skips.pop()], 1))
            return self.head(x)

        def forward(self, x):
            return x - self.artifact(x)

    return UNet3D()


def build_discriminator(channels: Tuple[int, ...] = (8, 16, 32)):
    """Strided 3D convolutions down to a map of patch scores (least-squares GAN: no sigmoid)."""
    from torch import nn  # lazy: installed on first use in Slicer

    layers, cin = [], 1
    for c in channels:
        layers += [nn.Conv3d(cin, c, 4, stride=2, padding=1), nn.GroupNorm(max(1, c // 4), c),
                   nn.LeakyReLU(0.2, inplace=True)]
        cin = c
    layers.append(nn.Conv3d(cin, 1, 3, padding=1))
    return nn.Sequential(*layers)


def pad_to_multiple(array: np.ndarray, multiple: int, value: float):
    """Pad a (z, y, x) array at the far end of each axis to a multiple; returns the padded
    array and the slices that cut the original back out."""
    pads = [(0, (-n) % multiple) for n in array.shape]
    crop = tuple(slice(0, n) for n in array.shape)
    return np.pad(array, pads, mode="constant", constant_values=value), crop


def count_parameters(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))
