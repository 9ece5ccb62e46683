"""The shallow 2D slice U-Net of the one-shot landmark method (thesis section 5.3.2).

One down step and one up step: two 3x3 convolution blocks at the input resolution,
max-pooling, a block at half resolution with twice the channels, upsampling, a skip
concatenation and a head that ends in one logit per pixel. It is fully convolutional,
so it runs on slices of any size divisible by 2. Shallow on purpose: with one training
volume, a deep network would learn that volume by heart.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn

from cochleaai.errors import CochleaAIError


@dataclass
class UNetConfig:
    """Architecture of :class:`SliceUNet` (stored in the model card)."""

    channels: int = 8           # first level (the thesis: 64)
    depth_channels: int = 16    # half-resolution level (the thesis: 128)
    convs_down: int = 2         # 3x3 convolutions before pooling (the thesis: 4)
    convs_bottom: int = 2
    convs_up: int = 2           # after the skip concatenation (the thesis: 5 incl. the head)
    dropout: float = 0.1        # on the input, as in the thesis figure

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "UNetConfig":
        try:
            cfg = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except TypeError as exc:
            raise CochleaAIError(f"The model card's network description is invalid ({exc}).") from None
        if min(cfg.channels, cfg.depth_channels, cfg.convs_down, cfg.convs_bottom, cfg.convs_up) < 1:
            raise CochleaAIError("The model card's network description has a zero-sized layer.")
        return cfg


def _block(c_in: int, c_out: int, n: int) -> nn.Sequential:
    layers = []
    for k in range(n):
        layers += [nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, padding=1),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SliceUNet(nn.Module):
    """``(B, 1, H, W)`` normalised slices -> ``(B, 1, H, W)`` logits of the structure."""

    def __init__(self, config: Optional[UNetConfig] = None):
        super().__init__()
        self.config = config or UNetConfig()
        c = self.config
        self.drop = nn.Dropout(c.dropout) if c.dropout > 0 else nn.Identity()
        self.down = _block(1, c.channels, c.convs_down)
        self.pool = nn.MaxPool2d(2)
        self.bottom = _block(c.channels, c.depth_channels, c.convs_bottom)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.merge = _block(c.channels + c.depth_channels, c.channels, c.convs_up)
        self.head = nn.Conv2d(c.channels, 1, 1)
        # start from "background almost everywhere" (the structure fills a few percent of a
        # slice): training then spends its steps on the structure, not on the bias
        nn.init.constant_(self.head.bias, -3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise CochleaAIError(f"Slices must have even sizes, got {tuple(x.shape[-2:])}.")
        skip = self.down(self.drop(x))
        deep = self.up(self.bottom(self.pool(skip)))
        return self.head(self.merge(torch.cat([skip, deep], dim=1)))
