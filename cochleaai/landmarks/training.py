"""Offline one-shot training of the slice U-Net (thesis Algorithm 3).

Each round resamples the reference image and its structure mask on a cube whose axes
are randomly rotated (+-``max_rotation_deg`` about each axis) and whose centre is
shifted (+-``max_shift_mm`` per axis) from the structure's centre of mass, then takes a
few optimiser steps on batches of its slices in the three orientations (binary
cross-entropy). Every ``validate_every`` steps the loss on the validation volume's three
orthogonal slice stacks (a cube on its structure, in its own image axes) is measured;
training stops when it has not improved for ``patience`` checks and the best weights
are kept. The reference registration patch and landmarks go into the model too.

Two augmentations make one reference serve other scans: half of the cubes are mirrored
(the other ear), and the grey values get a random gain and offset (other scanners and
reconstruction kernels). Without a validation volume, the validation slices come from
the reference itself under a fixed rotation and mirroring that training never draws
exactly.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.spatial.transform import Rotation

from cochleaai.errors import CochleaAIError
from cochleaai.landmarks.align import inertia_frame, mask_frame
from cochleaai.landmarks.inputs import check_landmarks, check_landmarks_near, check_mask, check_volume
from cochleaai.landmarks.localise import StructureNotFound, localise
from cochleaai.landmarks.model_io import OneShotModel, check_side
from cochleaai.landmarks.patches import (BONE_WINDOW, as_sitk, intensity_anchors, normalise, orthogonal_stacks,
                                         random_rotation, sample_patch)
from cochleaai.landmarks.unet import SliceUNet, UNetConfig
from cochleaai.progress import Progress


@dataclass
class TrainConfig:
    """Training settings (recorded in the model card)."""

    slice_size: int = 64             # network input, pixels (the thesis: 100)
    slice_spacing: float = 0.4       # mm per pixel: 25.6 mm slices (the thesis: 100 x 0.25 mm)
    max_rotation_deg: float = 45.0   # +- per axis, the augmentation range
    max_shift_mm: float = 6.0        # +- per axis
    batch_size: int = 16
    steps_per_resample: int = 4      # optimiser steps on each randomly resampled cube
    max_steps: int = 800
    validate_every: int = 25
    patience: int = 16               # validations without improvement before stopping
    learning_rate: float = 3e-3      # Adam (the thesis: 0.1, decreasing)
    noise_hu: float = 20.0           # extra Gaussian noise, sd drawn in [0, noise_hu]
    mirror: bool = True              # mirror half of the cubes (both ears from one reference)
    gain_jitter: float = 0.1         # grey values times a gain drawn in 1 +- gain_jitter
    offset_jitter_hu: float = 100.0  # ... plus an offset drawn in +- offset_jitter_hu
    lumen_fill: float = 0.5          # share of cubes whose structure is refilled (drained <-> fluid)
    lumen_fill_hu: tuple = (-1000.0, 300.0)   # ... with a grey value drawn in this range
    dice_weight: float = 1.0         # soft Dice added to the BCE (fuller maps of thin structures)
    patch_mm: float = 16.0           # registration patch edge (mm)
    patch_spacing: float = 0.3       # registration patch voxel (mm)
    max_seconds: Optional[float] = None
    window: tuple = BONE_WINDOW
    network: UNetConfig = field(default_factory=UNetConfig)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["window"] = list(self.window)
        d["lumen_fill_hu"] = list(self.lumen_fill_hu)
        return d


def _to_tensor(slices: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(slices[:, None], dtype=np.float32))


def _image_and_mask(image, mask_image, centre, axes, n: int, spacing: float, default: float):
    """The same cube of the image (linear, ``default`` outside) and of its structure mask
    (nearest neighbour, as bool), both as arrays."""
    cube = sample_patch(image, centre, axes, n, spacing, default)
    seg = sample_patch(mask_image, centre, axes, n, spacing, 0, "nearest")
    return cube.array, seg.array > 0.5


def _fill_map(reference, mask):
    """What refilling the structure changes: its mask blurred like the scan (a Gaussian of
    about two voxels), as a SimpleITK image, and the median grey value inside it now. A
    cube plus ``(v - median) * map`` shows the structure filled with ``v`` instead: a
    drained labyrinth as fluid-filled or the other way round, with the scan's own
    partial-volume edge."""
    sigma = 2.0 * float(np.min(reference.spacing)) / np.asarray(reference.spacing, float)[::-1]
    soft = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    lumen = float(np.median(reference.numeric_array("reference volume")[mask]))
    return as_sitk(reference.copy(soft)), lumen


#: The fixed pose of the reference's own validation cube (no validation volume given).
_SELF_VALIDATION_DEG = (25.0, -20.0, 30.0)


def _validation_stacks(image, mask_image, centre, axes, cfg: TrainConfig, mirror: bool = False):
    cube, seg = _image_and_mask(image, mask_image, centre, axes, cfg.slice_size, cfg.slice_spacing,
                                cfg.window[0])
    if mirror:
        cube, seg = cube[:, :, ::-1], seg[:, :, ::-1]
    x = np.concatenate(orthogonal_stacks(normalise(cube, cfg.window)))
    y = np.concatenate(orthogonal_stacks(seg)).astype(np.float32)
    return _to_tensor(x), _to_tensor(y)


def validation_loss(net, x, y, chunk: int = 64) -> float:
    """Mean BCE of ``net`` on stacked slices ``x`` against targets ``y``."""
    net.eval()
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            logits = net(x[s:s + chunk])
            total += float(F.binary_cross_entropy_with_logits(logits, y[s:s + chunk], reduction="sum"))
    net.train()
    return total / y.numel()


def _rotation_deg(angles) -> np.ndarray:
    return Rotation.from_euler("xyz", angles, degrees=True).as_matrix()


def train_oneshot(reference, reference_mask, landmarks, validation=None, validation_mask=None,
                  config: Optional[TrainConfig] = None, seed: int = 0, labels=None,
                  structure: str = "Cochlea", progress=None, side: Optional[str] = None) -> OneShotModel:
    """Train a one-shot model from one annotated reference (and an optional validation volume).

    ``reference``/``validation``: Volumes (HU for CT). ``*_mask``: bool arrays on their
    grids (or mask Volumes). ``landmarks``: :class:`~cochleaai.Markups` or ``(N, 3)``
    LPS points with ``labels``. ``side``: the reference's ear ("left"/"right"; None when
    unknown: detection then tries both ears). Without ``validation``, early stopping
    watches the reference under a fixed unseen pose. Returns the :class:`OneShotModel`; its
    ``card["training"]`` records the settings, seed, steps, losses and seconds.
    """
    cfg = config or TrainConfig()
    if cfg.slice_size % 2 or cfg.slice_size < 16:
        raise CochleaAIError("slice_size must be an even number of at least 16 pixels.")
    p = Progress.wrap(progress)
    reference = check_volume(reference, "reference volume")
    ref_mask = check_mask(reference_mask, reference, "reference structure mask")
    if (validation is None) != (validation_mask is None):
        raise CochleaAIError("Give the validation volume together with its structure mask, or neither.")
    if validation is not None:
        validation = check_volume(validation, "validation volume")
        val_mask = check_mask(validation_mask, validation, "validation structure mask")
    points, labels = check_landmarks(landmarks, reference, labels)
    side = check_side(side, "reference side")

    p(0.0, "Preparing the reference and validation volumes")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    centre, axes, values = mask_frame(reference, ref_mask)
    check_landmarks_near(points, labels, reference, ref_mask, cfg.patch_mm)
    ref_image = as_sitk(reference, "reference volume")
    ref_seg = as_sitk(reference.copy(ref_mask.astype(np.uint8)))
    if cfg.lumen_fill > 0:
        fill_image, lumen_hu = _fill_map(reference, ref_mask)
    if validation is not None:
        val_centre, _, _ = mask_frame(validation, val_mask)
        x_val, y_val = _validation_stacks(as_sitk(validation, "validation volume"),
                                          as_sitk(validation.copy(val_mask.astype(np.uint8))),
                                          val_centre, validation.direction, cfg)
    else:
        x_val, y_val = _validation_stacks(ref_image, ref_seg, centre,
                                          reference.direction @ _rotation_deg(_SELF_VALIDATION_DEG), cfg,
                                          mirror=cfg.mirror)

    net = SliceUNet(cfg.network)
    net.train()
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=max(1, cfg.max_steps // 3), gamma=0.5)
    n, bs = cfg.slice_size, cfg.batch_size
    best_loss, best_state, best_step, since_best = np.inf, None, 0, 0
    history = [[0, float("nan"), validation_loss(net, x_val, y_val)]]     # the untrained start
    step, stopped = 0, "max_steps"
    while step < cfg.max_steps:
        R = random_rotation(rng, cfg.max_rotation_deg)
        shift = rng.uniform(-cfg.max_shift_mm, cfg.max_shift_mm, 3)
        img, seg = _image_and_mask(ref_image, ref_seg, centre + shift, R, n, cfg.slice_spacing, cfg.window[0])
        if cfg.lumen_fill > 0 and rng.random() < cfg.lumen_fill:
            fill = sample_patch(fill_image, centre + shift, R, n, cfg.slice_spacing, 0.0).array
            img = img + np.float32(rng.uniform(*cfg.lumen_fill_hu) - lumen_hu) * fill
        if cfg.mirror and rng.random() < 0.5:
            img, seg = img[:, :, ::-1], seg[:, :, ::-1]
        for _ in range(cfg.steps_per_resample):
            sd = rng.uniform(0, cfg.noise_hu)
            gain = np.float32(1.0 + rng.uniform(-cfg.gain_jitter, cfg.gain_jitter))
            offset = np.float32(rng.uniform(-cfg.offset_jitter_hu, cfg.offset_jitter_hu))
            noisy = normalise(img * gain + offset
                              + rng.standard_normal(img.shape).astype(np.float32) * np.float32(sd), cfg.window)
            stacks_x, stacks_y = orthogonal_stacks(noisy), orthogonal_stacks(seg)
            # half of each batch from slices that cut the structure, so it is not drowned
            # by empty slices; the rest anywhere in the cube
            xb, yb = [], []
            for b in range(bs):
                o = int(rng.integers(3))
                hit = np.flatnonzero(stacks_y[o].any(axis=(1, 2)))
                k = int(rng.choice(hit)) if (b % 2 == 0 and hit.size) else int(rng.integers(n))
                xb.append(stacks_x[o][k])
                yb.append(stacks_y[o][k])
            x, y = _to_tensor(np.stack(xb)), _to_tensor(np.stack(yb).astype(np.float32))
            optimiser.zero_grad()
            logits = net(x)
            loss = F.binary_cross_entropy_with_logits(logits, y)
            if cfg.dice_weight > 0:
                prob = torch.sigmoid(logits)
                loss = loss + cfg.dice_weight * (1.0 - (2.0 * (prob * y).sum() + 1.0) / (prob.sum() + y.sum() + 1.0))
            loss.backward()
            optimiser.step()
            scheduler.step()
            step += 1
            if step % cfg.validate_every == 0:
                vloss = validation_loss(net, x_val, y_val)
                history.append([step, float(loss.item()), vloss])
                if vloss < best_loss - 1e-5:
                    best_loss, best_state, best_step, since_best = vloss, copy.deepcopy(net.state_dict()), step, 0
                else:
                    since_best += 1
            p(0.95 * step / cfg.max_steps, f"Training step {step}/{cfg.max_steps}, "
              f"validation loss {best_loss:.4f}")
            if since_best >= cfg.patience:
                stopped = "validation loss stopped improving"
                break
            if step >= cfg.max_steps:
                break
        if since_best >= cfg.patience:
            break
        if cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds:
            stopped = "time limit"
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()

    p(0.96, "Locating the reference as detection will see a target")
    # Detection aligns the target's axes of inertia, taken from the network's product map,
    # with the reference's: take the reference's from that same map (not from its mask), so
    # that a structure the network sees only in part (a cropped canal, a thin wall) is
    # seen in part on both sides alike.
    m = int(round(cfg.patch_mm / cfg.patch_spacing))
    model = OneShotModel(net=net, slice_size=n, slice_spacing=cfg.slice_spacing, window=tuple(cfg.window),
                         centre=centre, axes=axes, eigenvalues=values, image_centre=reference.center,
                         landmarks=points, labels=labels, patch=np.zeros((m, m, m), np.float32),
                         patch_mask=np.zeros((m, m, m), bool), patch_spacing=cfg.patch_spacing,
                         structure=structure, card={}, side=side,
                         anchors=intensity_anchors(reference.numeric_array("reference volume")))
    frame = "network"
    try:
        loc = localise(model, ref_image, reference, start=centre)
        frame_points = loc.probability.index_to_physical(np.argwhere(loc.weights > 0)[:, ::-1].astype(float))
        _, model.axes, model.eigenvalues = inertia_frame(frame_points, loc.weights[loc.weights > 0])
        model.centre = loc.centre
    except StructureNotFound:       # an undertrained network: the mask's frame, said in the card
        frame = "mask (the network did not find the structure in its own reference: train longer)"
    p(0.98, "Sampling the reference registration patch")
    patch, patch_mask = _image_and_mask(ref_image, ref_seg, model.centre, model.axes, m, cfg.patch_spacing,
                                        cfg.window[0])
    model.patch, model.patch_mask = patch.astype(np.float32), patch_mask
    seconds = time.perf_counter() - t0
    training = {"config": cfg.as_dict(), "seed": int(seed), "steps": int(step),
                "best_step": int(best_step), "best_validation_bce": float(best_loss),
                "stopped": stopped, "train_sec": round(seconds, 1),
                "history_step_train_val": history, "reference_frame": frame}
    model.card = {"training": training}
    p(1.0, f"Trained in {seconds:.0f} s ({step} steps, {stopped})")
    return model
