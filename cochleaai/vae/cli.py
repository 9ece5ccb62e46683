"""``python -m cochleaai vae train|sample|encode|nll``: the VAE commands."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import torch

from cochleaai import arguments, io
from cochleaai.arguments import add_force
from cochleaai.errors import EXIT_FLAGGED, CochleaAIError
from cochleaai.io.outputs import OutputPlan, written_whole
from cochleaai.model_files import model_paths
from cochleaai.progress import tqdm_progress
from cochleaai.threads import set_torch_threads
from cochleaai.vae.configs import ARCHITECTURES, STEP_MODE, STEP_MODES, mnist_model_config
from cochleaai.vae.data import VolumeGrid, binarize, load_mnist, phantom_dataset, read_folder
from cochleaai.vae.estimate import evaluate
from cochleaai.vae.explore import (OUT_OF_DOMAIN_MISMATCH, decode, decode_volume, encode_volume, grid_of,
                                   is_volume_model, latent_map, reconstruction_mismatch, sample_latent,
                                   save_latent_map_png)
from cochleaai.vae.model_io import load_model, save_model
from cochleaai.vae.shipped import default_model_path
from cochleaai.vae.train import TrainConfig, seeded_model, train, train_volume_model


def _load(args, require_volume: bool = False):
    path = args.model or default_model_path()
    return load_model(path, require={"kind": "volume"} if require_volume else None)


def _cmd_train(args) -> int:
    OutputPlan([args.folder, args.mnist], args.force).files(model_paths(args.out), "model file")
    set_torch_threads(args.threads)
    # the thesis architecture trains with its own optimiser (Adamax, Table 4.3); --lr overrides the rate
    optimiser = dict(ARCHITECTURES[args.architecture]["optimizer"]) if args.mnist else {"lr": 1e-3}
    if args.lr is not None:
        optimiser["lr"] = args.lr
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, patience=args.patience,
                      seed=args.seed, dynamic_binarization=bool(args.mnist), **optimiser)
    command = "python -m cochleaai " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if Path(sys.argv[0]).name in ("__main__.py", "cochleaai") else None
    card = {"training_command": command, "seed": args.seed, "description": args.description}
    with tqdm_progress("vae train", disable=args.quiet) as progress:
        if args.mnist:
            x = load_mnist(args.mnist, "train")
            n_val = max(1, int(0.1 * len(x)))
            limit = args.limit or (len(x) - n_val)
            config = mnist_model_config(args.model_kind, args.steps, args.latent, args.step_mode,
                                        args.architecture, args.nu)
            model = seeded_model(config, args.seed)
            result = train(model, x[:limit], x[-n_val:], cfg, progress=progress)

            card.update(data={"kind": "image", "dataset": "MNIST", "binarization": "dynamic",
                              "n_train": int(limit), "n_val": n_val},
                        training={"best_val_elbo": result["best_val_elbo"], "best_epoch": result["best_epoch"]})
            paths = save_model(model, args.out, card)
        else:
            grid = VolumeGrid(args.grid, args.spacing)
            if args.folder:
                arrays = read_folder(args.folder, grid, progress.stage(0.0, 0.2))
                card["data_source"] = f"volumes in {args.folder}"
            else:
                seeds = range(args.first_seed, args.first_seed + args.phantoms)
                arrays = phantom_dataset(seeds, grid, progress=progress.stage(0.0, 0.2))
                card["data_source"] = (f"cochleaai.phantom.make_phantom(seed, fov='roi'), seeds "
                                       f"{args.first_seed}..{args.first_seed + args.phantoms - 1}")
            overrides = {"steps": args.steps, "nu": args.nu, "step_mode": args.step_mode}
            if args.t_max:
                overrides["t_range"] = (min(1e-3, args.t_max / 2), args.t_max)
            if args.t_init is not None:
                overrides["t_init"] = args.t_init
            train_volume_model(arrays, grid, args.out, args.model_kind, args.latent, cfg,
                               overrides, card, progress.stage(0.2, 1.0), device=args.device)

            paths = model_paths(args.out)            # train_volume_model saves there
    print(json.dumps({"weights": str(paths[0]), "card": str(paths[1])}, indent=2))
    return 0


def _cmd_sample(args) -> int:
    set_torch_threads(args.threads)
    model, card = _load(args)
    ext = ".nrrd" if is_volume_model(card) else ".png"
    out = OutputPlan([args.model], args.force).folder(
        args.out, [f"sample_{i:03d}{ext}" for i in range(args.n)] + ["latent_map.png"])
    z = sample_latent(model, args.n, args.seed)
    files = []
    for i, zi in enumerate(z):
        if is_volume_model(card):
            files.append(str(io.write_volume(decode_volume(model, card, zi), out / f"sample_{i:03d}.nrrd")))
        else:
            path = out / f"sample_{i:03d}.png"
            with written_whole(path) as partial:
                io.pyplot().imsave(partial, decode(model, zi)[0], cmap="gray", vmin=0, vmax=1)
            files.append(str(path))
    mosaic, coords = latent_map(model, card, n=args.grid)
    png = save_latent_map_png(mosaic, coords, out / "latent_map.png", title=card.get("name", ""))
    print(json.dumps({"samples": files, "latent": z.round(4).tolist(), "latent_map": str(png)}, indent=2))
    return 0


def _cmd_encode(args) -> int:
    if args.out:
        OutputPlan([args.input, args.model], args.force).file(args.out, "reconstruction")
    set_torch_threads(args.threads)
    model, card = _load(args, require_volume=True)
    volume = io.read_volume(args.input)
    z = encode_volume(model, card, volume, samples=args.samples, seed=args.seed)
    mismatch = reconstruction_mismatch(model, card, volume, z)
    suspect = mismatch > OUT_OF_DOMAIN_MISMATCH
    result = {"input": args.input, "latent": [round(float(v), 5) for v in z],
              "reconstruction_mismatch": round(mismatch, 4), "suspect": suspect}
    if args.out:
        result["reconstruction"] = str(io.write_volume(decode_volume(model, card, z, volume.center,
                                                                     volume.direction), args.out))
    print(json.dumps(result, indent=2))
    if suspect:
        print(f"warning: the model reconstructs this volume poorly (mismatch {mismatch:.2f}, above "
              f"{OUT_OF_DOMAIN_MISMATCH}): it lies outside what the model learnt, so its latent "
              "coordinates mean little. Check that it is a cochlea crop like the training data.", file=sys.stderr)
        return EXIT_FLAGGED
    return 0


def _cmd_nll(args) -> int:
    set_torch_threads(args.threads)
    model, card = _load(args)
    with tqdm_progress("vae nll", disable=args.quiet) as progress:
        if args.mnist:
            if is_volume_model(card):
                raise CochleaAIError("This is a volume model; give --folder or --phantoms, not --mnist.")
            x = binarize(load_mnist(args.mnist, "test", limit=args.limit), seed=args.seed)
        else:
            grid = grid_of(card)
            if args.folder:
                arrays = read_folder(args.folder, grid, progress.stage(0.0, 0.2))
            else:
                arrays = phantom_dataset(range(args.first_seed, args.first_seed + args.phantoms), grid,
                                         progress=progress.stage(0.0, 0.2))
            x = torch.from_numpy(arrays).unsqueeze(1)
        result = evaluate(model, x, k=args.k, batch_size=args.batch, seed=args.seed,
                          progress=progress.stage(0.2, 1.0))
    print(json.dumps({"model": card.get("name"), "kind": card["config"]["model"], "n": result["n"],
                      "k": result["k"], "elbo": result["elbo"], "nll": result["nll"],
                      "seconds": round(result["seconds"], 2)}, indent=2))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("vae", help="VAE / HVAE / Langevin-VAE: train, sample, encode, NLL",
                              description="Variational autoencoders with a quasi-symplectic Langevin "
                                          "flow (thesis chapter 4). Without --model, the shipped "
                                          "default model (roi phantoms, 2D latent space) is used.")
    sub = p.add_subparsers(dest="vae_command", required=True, metavar="<vae command>")

    t = sub.add_parser("train", help="train a model on phantoms, a folder of volumes or MNIST",
                       description="Train a model and save <out>.pt with its card <out>.json. Data: "
                                   "roi phantoms (default), --folder of volumes (resampled to the grid) "
                                   "or --mnist mnist.npz.")
    t.add_argument("--out", required=True, help="output model path (stem; .pt and .json are written)")
    add_force(t)
    t.add_argument("--model-kind", choices=("vae", "hvae", "lvae"), default="lvae")
    t.add_argument("--latent", type=arguments.integer(1, 512), default=2, help="latent dimension (default 2)")
    t.add_argument("--steps", type=arguments.integer(1, 100), default=2, help="flow steps K (default 2)")
    t.add_argument("--nu", type=arguments.non_negative, default=0.01, help="Langevin damping nu (default 0.01)")
    t.add_argument("--t-max", type=arguments.positive, default=None, help="largest flow step t_b")
    t.add_argument("--t-init", type=arguments.positive, default=None,
                   help="volume models: where the learned flow steps start (default 0.8 t_b)")
    t.add_argument("--step-mode", choices=STEP_MODES, default=STEP_MODE,
                   help="flow steps: learned per dimension (default, both flows) or drawn at random")
    t.add_argument("--architecture", choices=tuple(ARCHITECTURES), default="small",
                   help="MNIST networks: small (3x3, 256 units, ELU, Adam; default) or thesis (5x5, 450 units, "
                        "Softplus, average-logit bias, Adamax lr 5e-4)")
    t.add_argument("--phantoms", type=arguments.integer(2, 100000), default=64, help="number of roi phantoms (default 64)")
    t.add_argument("--first-seed", type=arguments.seed, default=0, help="seed of the first phantom")
    t.add_argument("--folder", help="train on the volume files in this folder instead")
    t.add_argument("--mnist", help="train on MNIST from this mnist.npz instead")
    t.add_argument("--limit", type=arguments.count, default=None, help="MNIST: number of training images")
    t.add_argument("--grid", type=arguments.whole_numbers(3, 4, 256), default=(25, 25, 30), help="volume grid z,y,x (default 25,25,30)")
    t.add_argument("--spacing", type=arguments.real(minimum=0.02, maximum=5.0), default=0.4, help="grid spacing in mm (default 0.4)")
    t.add_argument("--epochs", type=arguments.count, default=100)
    t.add_argument("--batch", type=arguments.count, default=8)
    t.add_argument("--lr", type=arguments.positive, default=None,
                   help="learning rate (default 1e-3; 5e-4 with --architecture thesis)")
    t.add_argument("--patience", type=arguments.count, default=20, help="early stopping patience in epochs")
    t.add_argument("--seed", type=arguments.seed, default=0)
    t.add_argument("--threads", type=arguments.threads, default=None, help="torch CPU threads")
    t.add_argument("--device", default="cpu", help="torch device for volume training (cpu or cuda)")
    t.add_argument("--description", default="", help="free text stored in the model card")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="draw samples and write the latent map",
                       description="Write sample_NNN.nrrd (volumes, HU) or .png (images) drawn from the "
                                   "prior, and latent_map.png (decoded middle slices over z1, z2).")
    s.add_argument("--model", default=None, help="model .pt (default: the shipped model)")
    s.add_argument("--n", type=arguments.integer(1, 10000), default=4, help="number of samples (default 4)")
    s.add_argument("--seed", type=arguments.seed, default=0)
    s.add_argument("--grid", type=arguments.integer(2, 50), default=7, help="latent map tiles per side, 2 to 50 (default 7)")
    s.add_argument("--out", required=True, help="output folder")
    add_force(s)
    s.add_argument("--threads", type=arguments.threads, default=None)
    s.set_defaults(func=_cmd_sample)

    e = sub.add_parser("encode", help="latent coordinates of a CT volume (and its reconstruction)",
                       description="Resample the volume onto the model grid around its centre, print "
                                   "the posterior mean latent coordinates, optionally write the "
                                   "reconstruction.")
    e.add_argument("--model", default=None)
    e.add_argument("--input", required=True, help="volume file (NRRD, NIfTI, ...)")
    e.add_argument("--out", default=None, help="write the reconstruction here (.nrrd)")
    add_force(e)
    e.add_argument("--samples", type=arguments.integer(0, 10000), default=0,
                   help="0: the encoder mean (default); N: mean of N flow draws")
    e.add_argument("--seed", type=arguments.seed, default=0)
    e.add_argument("--threads", type=arguments.threads, default=None)
    e.set_defaults(func=_cmd_encode)

    n = sub.add_parser("nll", help="ELBO and importance-sampled NLL of data under a model",
                       description="IWAE estimate of the negative log-likelihood with k samples, and "
                                   "the ELBO from the same draws (nats per item).")
    n.add_argument("--model", default=None)
    n.add_argument("--k", type=arguments.integer(1, 10 ** 6), default=1000, help="importance samples per item (default 1000)")
    n.add_argument("--mnist", help="MNIST test set from this mnist.npz (fixed binarisation)")
    n.add_argument("--limit", type=arguments.count, default=None, help="MNIST: number of test images")
    n.add_argument("--folder", help="volume files in this folder")
    n.add_argument("--phantoms", type=arguments.count, default=8, help="number of roi phantoms (default 8)")
    n.add_argument("--first-seed", type=arguments.seed, default=1000, help="first phantom seed (default 1000)")
    n.add_argument("--batch", type=arguments.count, default=8)
    n.add_argument("--seed", type=arguments.seed, default=0)
    n.add_argument("--threads", type=arguments.threads, default=None)
    n.add_argument("--quiet", action="store_true")
    n.set_defaults(func=_cmd_nll)
