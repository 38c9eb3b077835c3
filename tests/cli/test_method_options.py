"""Method flags come from the method registry: one flag per MethodOption, one meaning per flag name across
`train` and `adapt`, routed to the method that declares it; old spellings fail with a clear error."""
import argparse

import pytest

from posekit.cli import build_parser, main, train_config_from_args
from posekit.cli.common import add_method_options, method_kwargs_from_args
from posekit.methods import METHODS
from posekit.methods.base import Method, MethodOption


def test_every_declared_option_is_a_flag_of_train_and_a_keyword_of_its_method():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = {opt for action in train._actions for opt in action.option_strings}
    for name, cls in METHODS.items():
        defaults = cls.option_defaults()  # read from the constructor: every option is one of its keywords
        for option in cls.options:
            assert f"--{option.flag}" in flags, (name, option.flag)
            assert option.key in defaults
    from posekit.methods.sfda import SFDA
    assert SFDA.option_defaults() == {"alpha": 0.7, "beta": 0.5, "gamma": 0.85, "ema": 0.999, "tau": 1.0}


def test_flags_reach_the_method_that_declares_them(tmp_path):
    args = build_parser().parse_args(["train", "--data", "coco:x.json", "--method", "fpd", "--teacher", "t.pt",
                                      "--alpha", "0.25", "--unlabeled-ratio", "0.5"])
    assert train_config_from_args(args).method_kwargs == {"teacher": "t.pt", "alpha": 0.25, "unlabeled_ratio": 0.5}
    args = build_parser().parse_args(["train", "--data", "coco:x.json", "--method", "sfda", "--residual-weight",
                                      "0.3", "--method-kwargs", '{"regressor": "head"}'])
    assert train_config_from_args(args).method_kwargs == {"regressor": "head", "alpha": 0.3}
    args = build_parser().parse_args(["train", "--data", "coco:x.json", "--teacher", "t.pt"])  # supervised
    with pytest.raises(ValueError, match="--teacher is an option of advmix, fpd, netaug, not of supervised"):
        train_config_from_args(args)


def test_one_meaning_per_flag_name():
    class A(Method):
        name = "a"
        options = (MethodOption("alpha", float, "weight of one thing"),)

        def __init__(self, *, alpha: float = 0.1):
            pass

    class B(A):
        name = "b"
        options = (MethodOption("alpha", float, "weight of another thing"),)

    parser = argparse.ArgumentParser()
    add_method_options(parser, [A])
    assert method_kwargs_from_args(parser.parse_args(["--alpha", "2"]), A, [A]) == {"alpha": 2.0}
    with pytest.raises(RuntimeError, match="--alpha means different things for methods 'a' and 'b'"):
        add_method_options(argparse.ArgumentParser(), [A, B])


def test_adapt_alpha_is_renamed_with_a_clear_error(tmp_path, capsys):
    argv = ["adapt", "--source", "s.pt", "--target", "coco:t.json", "--out", str(tmp_path), "--alpha", "0.5"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("posekit adapt: error: --alpha is now --residual-weight (SFDA's weight of L_res); --alpha is "
                   "the distillation weight of fpd / advmix in posekit train")
    assert len(err.splitlines()) == 1  # one line, no traceback


def test_bad_json_flags_are_one_line_errors(tmp_path, capsys):
    assert main(["train", "--data", "coco:x.json", "--out", str(tmp_path), "--model-kwargs", "[1]"]) == 2
    assert capsys.readouterr().err.strip() == "posekit train: error: --model-kwargs must be a JSON object, got [1]"
    assert main(["adapt", "--source", "s.pt", "--target", "coco:t.json", "--out", str(tmp_path), "--method", "scai",
                 "--scai-kwargs", "{bad"]) == 2
    assert capsys.readouterr().err.startswith("posekit adapt: error: --scai-kwargs is not valid JSON")
