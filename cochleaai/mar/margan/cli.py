"""Commands of ``cochleaai.mar.margan``: ``margan train`` (registered by cochleaai.cli)."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from cochleaai import arguments
from cochleaai.arguments import add_force
from cochleaai.io.outputs import OutputPlan
from cochleaai.mar.margan.losses import ALPHA, SIGMA_VOXELS
from cochleaai.mar.margan.train import TrainConfig, train
from cochleaai.model_files import model_paths
from cochleaai.progress import tqdm_progress
from cochleaai.threads import set_torch_threads


def _cmd_train(args) -> int:
    # resuming continues the same model
    OutputPlan([args.pairs], args.force or args.resume).files(model_paths(args.out), "model file")
    settings = TrainConfig(steps=args.steps, channels=args.channels, alpha=args.alpha, sigma_voxels=args.sigma,
                           pixel_loss=args.pixel_loss,
                           adv_weight=args.adv_weight, adv_start=args.adv_start, optimizer=args.optimizer,
                           lr_g=args.lr_g, lr_d=args.lr_d, val_every=args.val_every,
                           checkpoint_every=args.checkpoint_every, max_minutes=args.max_minutes,
                           seed=args.seed, device=args.device)
    set_torch_threads(args.threads)
    command = "python -m cochleaai " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with tqdm_progress("margan train", disable=args.quiet) as progress:
        record = train(args.pairs, args.out, settings, resume=args.resume, progress=progress, command=command,
                       limit=args.limit)
    summary = {k: record[k] for k in ("n_train", "n_val", "steps_done", "seconds", "val_rmse_hu",
                                      "val_rmse_hu_input", "device")}
    print(json.dumps(summary, indent=2))
    return 0


def channel_list(text: str) -> tuple:
    """``--channels``: U-Net channels per level, comma-separated (at least two levels)."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if len(parts) < 2:
        raise argparse.ArgumentTypeError(f"expected at least two comma-separated channel counts, got {text!r}")
    return tuple(arguments.integer(1, 4096)(p) for p in parts)


def add_commands(subparsers) -> None:
    d = TrainConfig()
    top = subparsers.add_parser("margan", help="MARGAN: train the 3D GAN for metal artifact reduction",
                                description="MARGAN, the 3D GAN that removes cochlear-implant artifacts. "
                                            "Use it with 'mar --method margan'.")
    sub = top.add_subparsers(dest="margan_command", required=True, metavar="<command>")
    p = sub.add_parser("train", help="train a MARGAN model on simulated pairs (simulate-pairs)",
                       description="Train the generator (3D U-Net predicting the artifact) and the discriminator "
                                   "on whole volumes; checkpoints MODEL.checkpoint.pt; writes MODEL.pt and its "
                                   "card MODEL.json with the validation figures.")
    p.add_argument("--pairs", required=True, help="folder written by simulate-pairs")
    p.add_argument("--out", required=True, help="model path (MODEL.pt and MODEL.json are written)")
    add_force(p)
    p.add_argument("--steps", type=arguments.count, default=d.steps, help=f"training steps, one volume each (default {d.steps})")
    p.add_argument("--channels", type=channel_list, default=d.channels,
                   help=f"U-Net channels per level (default {','.join(map(str, d.channels))})")
    p.add_argument("--alpha", type=arguments.non_negative, default=ALPHA, help=f"Retinex weight (default {ALPHA})")
    p.add_argument("--sigma", type=arguments.positive, default=SIGMA_VOXELS,
                   help=f"Retinex Gaussian sigma in voxels (default {SIGMA_VOXELS})")
    p.add_argument("--pixel-loss", choices=("mse", "l1"), default=d.pixel_loss,
                   help="pixel loss (default mse, the thesis's; l1 for the ablation)")
    p.add_argument("--adv-weight", type=arguments.non_negative, default=d.adv_weight,
                   help=f"adversarial weight (default {d.adv_weight})")
    p.add_argument("--adv-start", type=arguments.integer(0), default=d.adv_start,
                   help=f"first step with the adversarial terms (default {d.adv_start})")
    p.add_argument("--optimizer", choices=("rmsprop", "adam"), default=d.optimizer)
    p.add_argument("--lr-g", type=arguments.positive, default=d.lr_g)
    p.add_argument("--lr-d", type=arguments.positive, default=d.lr_d)
    p.add_argument("--val-every", type=arguments.count, default=d.val_every)
    p.add_argument("--checkpoint-every", type=arguments.count, default=d.checkpoint_every)
    p.add_argument("--max-minutes", type=arguments.positive, default=None, help="stop after this much training time")
    p.add_argument("--limit", type=arguments.count, default=None, help="use only the first N pairs")
    p.add_argument("--seed", type=arguments.seed, default=d.seed)
    p.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu or cuda")
    p.add_argument("--threads", type=arguments.threads, default=None, help="CPU threads for torch")
    p.add_argument("--resume", action="store_true", help="continue from MODEL.checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)
