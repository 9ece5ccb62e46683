"""ELBO and importance-sampled negative log-likelihood (the IWAE estimator).

For each input x, k posterior samples give log weights ``log w_i`` (see ``models.py``).

* ELBO estimate: ``mean_i log w_i``.
* NLL estimate: ``-log(1/k sum_i w_i)`` (Burda et al. 2016), computed with log-sum-exp. It
  is an upper bound on -log p(x) that tightens as k grows (thesis Table 4.1 uses k = 5000).

Both come from the same draws, so for every image ``nll <= -elbo`` holds exactly (Jensen's
inequality on the empirical mean), not only in expectation. Samples are drawn in chunks of
at most ``max_batch`` rows so that large k fits in memory.
"""
from __future__ import annotations

import math
import time
from typing import Optional

import torch

from cochleaai.errors import CochleaAIError
from cochleaai.progress import Progress


def log_weights(model, x: torch.Tensor, k: int, max_batch: int = 2048,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B, k) log importance weights for the rows of ``x`` (no gradient kept)."""
    if k < 1:
        raise CochleaAIError(f"The number of importance samples k must be >= 1, got {k}.")
    was_training = model.training
    model.eval()
    try:
        rows = []
        for i in range(x.shape[0]):
            xi = x[i:i + 1]
            chunks, done = [], 0
            while done < k:
                n = min(k - done, max_batch)
                xr = xi.expand(n, *xi.shape[1:])
                with torch.no_grad():
                    chunks.append(model.sample_posterior(xr, generator)["log_w"].detach())
                done += n
            rows.append(torch.cat(chunks))
        return torch.stack(rows)
    finally:
        model.train(was_training)


def log_weights_batched(model, x: torch.Tensor, k: int, max_batch: int = 2048,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Same as :func:`log_weights` but packs several images in one pass when k is small."""
    per_pass = max(1, max_batch // k)
    if per_pass == 1:
        return log_weights(model, x, k, max_batch, generator)
    was_training = model.training
    model.eval()
    try:
        out = []
        for s in range(0, x.shape[0], per_pass):
            xb = x[s:s + per_pass]
            b = xb.shape[0]
            xr = xb.unsqueeze(1).expand(b, k, *xb.shape[1:]).reshape(b * k, *xb.shape[1:])
            with torch.no_grad():
                out.append(model.sample_posterior(xr, generator)["log_w"].detach().view(b, k))
        return torch.cat(out)
    finally:
        model.train(was_training)


def evaluate(model, data: torch.Tensor, k: int = 5000, batch_size: int = 64,
             max_batch: int = 2048, seed: int = 0, progress=None) -> dict:
    """ELBO and IS-NLL (nats per item, means over ``data``) with k samples per item.

    Returns ``{"elbo", "nll", "k", "n", "seconds", "nll_per_item", "elbo_per_item"}``.
    """
    p = Progress.wrap(progress)
    if data.shape[0] == 0:
        raise CochleaAIError("No data to evaluate: give at least one image or volume.")
    if not torch.isfinite(data).all():
        raise CochleaAIError("The data contain NaN or infinite values; clean them first.")
    generator = torch.Generator(device=data.device).manual_seed(int(seed))
    t0 = time.perf_counter()
    nll, elbo = [], []
    n = data.shape[0]
    for s in range(0, n, batch_size):
        p(s / n, f"importance sampling, k={k}: {s}/{n}")
        lw = log_weights_batched(model, data[s:s + batch_size], k, max_batch, generator).double()
        nll.append(-(torch.logsumexp(lw, dim=1) - math.log(k)))
        elbo.append(lw.mean(dim=1))
    p(1.0, "evaluation done")
    nll_t, elbo_t = torch.cat(nll), torch.cat(elbo)
    if not (torch.isfinite(nll_t).all() and torch.isfinite(elbo_t).all()):
        raise CochleaAIError("The model gives non-finite likelihoods on these data; it has "
                             "diverged or does not fit this kind of data.")
    return {"elbo": float(elbo_t.mean()), "nll": float(nll_t.mean()), "k": int(k), "n": int(n),
            "seconds": time.perf_counter() - t0,
            "nll_per_item": nll_t.cpu().numpy(), "elbo_per_item": elbo_t.cpu().numpy()}
