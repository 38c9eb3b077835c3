"""`posekit train`: a top-down model with any registered method; the method's own flags come from its
:class:`~posekit.methods.base.MethodOption` declarations."""
from __future__ import annotations

import argparse
from pathlib import Path

from posekit.cli.common import add_method_options, json_object, method_kwargs_from_args, size_arg
from posekit.strict_json import dumps_strict

#: flag -> TrainConfig option, for the flags that set one option as given
OPTION_FLAGS = {"data": "train", "val": "val", "out": "out", "model": "model", "input_size": "input_size",
                "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "seed": "seed", "workers": "workers",
                "threads": "threads", "device": "device", "amp": "amp", "method": "method", "init": "init",
                "nan_policy": "nan_policy", "sigma": "sigma", "max_iters": "max_iters_per_epoch",
                "skip_invalid": "skip_invalid", "head": "head", "crop_cache": "crop_cache",
                "cache_dir": "cache_dir", "loader_threads": "loader_threads"}
#: JSON-object flags merged over the config file's value of the same option
MERGED_FLAGS = ("model_kwargs", "head_kwargs", "codec_kwargs", "loss", "augment", "method_kwargs")


def add_parser(sub) -> None:
    from posekit.methods import METHODS
    t = sub.add_parser("train", help="train a top-down model")
    t.add_argument("--data", help="training data spec, e.g. lsp:../shared/datasets/lspet@train")
    t.add_argument("--val", help="validation data spec")
    t.add_argument("--out", help="run folder (checkpoints, log.jsonl)")
    t.add_argument("--config", help="JSON file of training options (flags override it)")
    t.add_argument("--model", help="registered model name (posekit info all)")
    t.add_argument("--model-kwargs", help='JSON, e.g. \'{"width": 0.5}\'')
    t.add_argument("--input-size", type=size_arg, help="model input WxH, e.g. 128 or 96x128")
    t.add_argument("--epochs", type=int, help="training epochs (at least 1; default 10)")
    t.add_argument("--batch-size", type=int, help="people per step (default 32)")
    t.add_argument("--lr", type=float, help="peak learning rate of AdamW (default 2e-3)")
    t.add_argument("--sigma", type=float, help="Gaussian sigma of the heatmap targets (heatmap pixels)")
    t.add_argument("--augment", help='JSON overrides of the augmentation, e.g. \'{"aid_prob": 0.3}\'')
    t.add_argument("--head", choices=["heatmap", "dsnt", "regression", "rle"],
                   help="target representation + head + loss (default heatmap)")
    t.add_argument("--head-kwargs", help='JSON options of the regression/rle head module, e.g. \'{"init_std": 0.01}\'')
    t.add_argument("--codec-kwargs", help='JSON extra codec options, e.g. \'{"normalized": false}\' or \'{"beta": 2}\'')
    t.add_argument("--loss", help='JSON head-loss options, e.g. \'{"coord": "l1", "bone_loss": "limbs", '
                                  '"bone_weight": 0.5, "awl": true}\' (posekit.losses.build_head_loss)')
    t.add_argument("--seed", type=int, help="seed of the model init, shuffling and augmentation (default 0)")
    t.add_argument("--workers", type=int, help="data-loading worker processes")
    t.add_argument("--threads", type=int, help="torch threads for the training process (default: all cores)")
    t.add_argument("--loader-threads", type=int,
                   help="threads making each batch's crops in the loading process (default: as many as torch's)")
    t.add_argument("--device", help="cpu | cuda")
    t.add_argument("--amp", action="store_true", default=None, help="mixed precision: bf16 autocast on the CPU, fp16 on CUDA (weights, optimiser, checkpoints stay fp32)")
    t.add_argument("--crop-cache", action=argparse.BooleanOptionalAction, default=None,
                   help="warp training crops from a cache of person crops decoded once (default on; "
                        "--no-crop-cache decodes every image every epoch)")
    t.add_argument("--cache-dir", help="crop cache folder (default $POSEKIT_CACHE or ~/.cache/posekit/crops)")
    t.add_argument("--method", help=f"training method: {' | '.join(METHODS.names())} (default supervised)")
    t.add_argument("--method-kwargs", help='JSON of further options of the method, e.g. \'{"branches": 2}\'')
    add_method_options(t, [cls for _, cls in METHODS.items()])
    t.add_argument("--init", help="start from this checkpoint's weights (e.g. synthetic pretraining)")
    t.add_argument("--nan-policy", choices=["raise", "skip"], help="non-finite loss: stop (default) or skip the step")
    t.add_argument("--max-iters", type=int, help="cap iterations per epoch (quick runs)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--overwrite", action="store_true",
                   help="replace a previous run in OUT (its checkpoints and log); without it or --resume a used "
                        "folder is refused")
    t.add_argument("--skip-invalid", action="store_true", default=None, help="skip malformed records (reported)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=run)


def read_options_file(path) -> dict:
    """The training options of ``--config FILE``: a JSON object (anything else is one error naming the file)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--config {path}: cannot read it ({err})") from None
    return json_object(text, str(path)) if text.strip() else {}


def train_config_from_args(args):
    """The TrainConfig of ``--config`` with the given flags over it. A bad option is one ValueError naming it,
    and the config file when the value came from there."""
    from posekit.engine.train_config import TrainOptionError
    from posekit.engine.trainer import TrainConfig
    from posekit.methods import METHODS
    from_file = read_options_file(args.config) if args.config else {}
    base = dict(from_file)
    overrides = {option: getattr(args, flag) for flag, option in OPTION_FLAGS.items()}
    overrides["progress"] = not args.no_progress
    base.update({k: v for k, v in overrides.items() if v is not None})
    for key in MERGED_FLAGS:
        given = json_object(getattr(args, key, None), "--" + key.replace("_", "-"))
        if given:
            kept = base.get(key, {})
            base[key] = {**kept, **given} if isinstance(kept, dict) else given
    try:
        cfg = TrainConfig.from_dict(base)
    except TrainOptionError as err:
        came_from_file = err.option is None or (err.option in from_file and base.get(err.option) is from_file[err.option])
        raise ValueError(f"{args.config}: {err}" if args.config and came_from_file else str(err)) from None
    method = METHODS.get(cfg.method)
    cfg.method_kwargs = {**cfg.method_kwargs,
                         **method_kwargs_from_args(args, method, [cls for _, cls in METHODS.items()])}
    return cfg


def run(args) -> int:
    from posekit.methods import build_trainer
    cfg = train_config_from_args(args)
    result = build_trainer(cfg, resume=args.resume, overwrite=args.overwrite).fit()
    print(dumps_strict(result, indent=2))
    return 0
