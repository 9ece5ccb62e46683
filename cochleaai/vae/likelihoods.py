"""Conditional likelihoods p(x | z) given the decoder output.

* :class:`Bernoulli` for binary images (binarised MNIST): the decoder gives logits.
* :class:`Gaussian` for CT volumes on normalised Hounsfield units: the decoder gives the
  mean, the standard deviation is one learned scalar. Why Gaussian rather than a
  discretised logistic: CT noise is close to Gaussian (the phantom adds Gaussian noise of
  10-40 HU after a Gaussian blur), and HU values are integers whose quantisation step (1 HU)
  is far below that noise, so discretising brings nothing but the bookkeeping of bins. A
  continuous density also keeps the NLL in nats comparable between grids; convert it to HU
  units with :meth:`Gaussian.nats_offset_to_hu`.

Every ``log_prob(x, params)`` returns one value per batch row, summed over the data.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class Bernoulli(nn.Module):
    name = "bernoulli"

    def log_prob(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits),
                                                   reduction="none").flatten(1).sum(1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def config(self) -> dict:
        return {"name": self.name}


class Gaussian(nn.Module):
    """N(x | mean, sigma^2 I) with sigma = exp(log_sigma), learned unless ``learn_sigma=False``."""

    name = "gaussian"

    def __init__(self, sigma: float = 0.1, learn_sigma: bool = True, min_sigma: float = 1e-3):
        super().__init__()
        value = torch.tensor(math.log(sigma), dtype=torch.float32)
        if learn_sigma:
            self.log_sigma = nn.Parameter(value)
        else:
            self.register_buffer("log_sigma", value)
        self.learn_sigma = bool(learn_sigma)
        self.min_log_sigma = math.log(min_sigma)

    def sigma(self) -> torch.Tensor:
        return self.log_sigma.clamp(min=self.min_log_sigma).exp()

    def log_prob(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        log_sigma = self.log_sigma.clamp(min=self.min_log_sigma)
        r = (x.expand_as(mean) - mean) * torch.exp(-log_sigma)
        per_voxel = -0.5 * r * r - log_sigma - 0.5 * math.log(2 * math.pi)
        return per_voxel.flatten(1).sum(1)

    def mean(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    @staticmethod
    def nats_offset_to_hu(n_values: int, hu_scale: float) -> float:
        """Add this to an NLL on normalised values (x = HU / hu_scale + c) to get it per HU."""
        return n_values * math.log(hu_scale)

    def config(self) -> dict:
        return {"name": self.name, "sigma": float(self.sigma().detach()),
                "learn_sigma": self.learn_sigma}


def build_likelihood(config: dict) -> nn.Module:
    name = config.get("name")
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return Gaussian(sigma=float(config.get("sigma", 0.1)),
                        learn_sigma=bool(config.get("learn_sigma", True)))
    raise ValueError(f"unknown likelihood {name!r}")
