"""What several commands share: argument types, the predictor options, JSON-object flags and the method
options read from the method registry."""
from __future__ import annotations

import argparse
import json

__all__ = ["size_arg", "json_object", "add_predictor_args", "load_predictor", "add_method_options",
           "method_kwargs_from_args"]


def size_arg(text: str) -> tuple[int, int]:
    """'128' -> (128, 128); '192x256' -> (192, 256) as (W, H)."""
    parts = text.lower().split("x")
    try:
        w, h = (int(parts[0]), int(parts[-1]))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 128 or 96x128, got {text!r}") from None
    if w <= 0 or h <= 0 or len(parts) > 2:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def json_object(text: str | None, flag: str) -> dict:
    """A JSON-object flag's value ({} when not given); anything else is a ValueError naming the flag."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{flag} is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        shown = repr(value)
        raise ValueError(f"{flag} must be a JSON object, got {shown if len(shown) <= 60 else shown[:57] + '...'}")
    return value


# -- a predictor ---------------------------------------------------------------------------------
def add_predictor_args(q: argparse.ArgumentParser, *, checkpoint_required: bool = True, scai: bool = True) -> None:
    q.add_argument("--checkpoint", required=checkpoint_required,
                   help="posekit checkpoint (.pt) or exported model (.onnx)")
    q.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                   help="run the network with PyTorch (default) or ONNX Runtime (needs posekit[onnx])")
    q.add_argument("--no-flip", action="store_true", help="disable flip test")
    q.add_argument("--decode", choices=["dark", "argmax", "movenet"], help="override the checkpoint's decoding (movenet: MoveNetCodec models only)")
    q.add_argument("--batch-size", type=int, default=32, help="person crops per network call (default 32)")
    if not scai:
        return
    q.add_argument("--scai", metavar="CKPT", help="SCAI checkpoint: correct the distal joints "
                                                  "(posekit.methods.scai; train with posekit adapt --method scai)")
    q.add_argument("--tta", choices=["scai"], help="test-time training: 'scai' adapts SCAI's correction net "
                                                   "on the test images (needs --scai)")
    q.add_argument("--tta-steps", type=int, help="test-time training steps per batch (default: the SCAI "
                                                 "checkpoint's)")
    q.add_argument("--tta-lr", type=float, help="test-time training learning rate (default: the SCAI checkpoint's)")


def load_predictor(args):
    from posekit.inference.predictor import Predictor
    predictor = Predictor.load(args.checkpoint, backend=args.backend, flip_test=not args.no_flip,
                               batch_size=args.batch_size, **({"decode": args.decode} if args.decode else {}))
    scai, tta = getattr(args, "scai", None), getattr(args, "tta", None)
    if tta and not scai:
        raise ValueError(f"--tta {tta} needs --scai CKPT (SCAI networks: posekit adapt --method scai)")
    if scai:  # SCAI corrects the distal joints; with --tta scai it also trains its correction net on the test images
        from posekit.methods.scai import SCAICorrector
        return SCAICorrector.wrap(predictor, scai, mode="tta" if tta == "scai" else "correct",
                                  tta_steps=getattr(args, "tta_steps", None), tta_lr=getattr(args, "tta_lr", None))
    return predictor


# -- method options, from the registry ------------------------------------------------------------
def _dest(flag: str) -> str:
    return "method_option_" + flag.replace("-", "_")


def add_method_options(parser: argparse.ArgumentParser, methods) -> None:
    """One flag per :class:`~posekit.methods.base.MethodOption` of ``methods`` (Method classes). A flag several
    methods declare must mean the same for each (same keyword, type and help); defaults stay None so a config
    file's values are not overridden, and the help lists each method's default."""
    uses: dict[str, list] = {}
    for cls in methods:
        defaults = cls.option_defaults()
        for option in cls.options:
            uses.setdefault(option.flag, []).append((cls, option, defaults[option.key]))
    for flag, declared in uses.items():
        option = declared[0][1]
        for cls, other, _ in declared[1:]:
            if (other.key, other.type, other.help) != (option.key, option.type, option.help):
                raise RuntimeError(f"--{flag} means different things for methods {declared[0][0].name!r} and "
                                   f"{cls.name!r}: one flag name, one meaning")
        defaults = ", ".join(f"{cls.name}: {default}" if default is not None else cls.name
                             for cls, _, default in declared)
        parser.add_argument(f"--{flag}", type=option.type, dest=_dest(flag), metavar=option.key.upper(),
                            help=f"{option.help} ({defaults})")


def method_kwargs_from_args(args, method, methods) -> dict:
    """The constructor keywords of ``method`` (a Method class) that its flags set; a flag of another method of
    ``methods`` is a ValueError."""
    own = {option.flag: option for option in method.options}
    kwargs = {}
    for cls in methods:
        for option in cls.options:
            value = getattr(args, _dest(option.flag), None)
            if value is None:
                continue
            if option.flag not in own:
                owners = [c.name for c in methods if any(o.flag == option.flag for o in c.options)]
                raise ValueError(f"--{option.flag} is an option of {', '.join(owners)}, not of {method.name}")
            kwargs[own[option.flag].key] = value
    return kwargs
