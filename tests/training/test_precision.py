"""Which CPUs compute bf16 natively, and the warning a bf16 run gets on one that does not."""
import logging

import pytest

from posekit.engine.trainer import TrainConfig
from posekit.methods import build_trainer
from posekit.training import precision
from posekit.training.precision import cpu_has_native_bf16, slow_autocast_warning

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx fma avx2\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx fma avx2\n"
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


@pytest.mark.parametrize("cpuinfo, native", [(AVX2_ONLY, False), (SAPPHIRE_RAPIDS, True), (ZEN4, True),
                                             ("model name\t: avx512_bf16 in a name is not a flag\n", False)])
def test_native_bf16_is_read_from_the_flags_lines(cpuinfo, native):
    assert cpu_has_native_bf16(cpuinfo) is native


def test_the_warning_only_for_cpu_autocast_without_native_bf16():
    assert "without native bf16" in slow_autocast_warning("cpu", True, AVX2_ONLY)
    assert slow_autocast_warning("cpu", False, AVX2_ONLY) is None
    assert slow_autocast_warning("cpu", True, SAPPHIRE_RAPIDS) is None
    assert slow_autocast_warning("cuda", True, AVX2_ONLY) is None


def test_unknown_cpu_gets_no_warning(monkeypatch):
    monkeypatch.setattr(precision, "_read_cpuinfo", lambda: None)
    assert cpu_has_native_bf16() is None
    assert slow_autocast_warning("cpu", True) is None


@pytest.mark.parametrize("cpuinfo, warned", [(AVX2_ONLY, True), (SAPPHIRE_RAPIDS, False)])
def test_an_amp_trainer_warns_on_a_cpu_without_native_bf16(tmp_path, tiny_data, monkeypatch, caplog, cpuinfo,
                                                           warned):
    monkeypatch.setattr(precision, "_read_cpuinfo", lambda: cpuinfo)
    cfg = TrainConfig(train=f"coco:{tiny_data}", val=None, out=str(tmp_path / "run"), model="simplebaseline_r18",
                      model_kwargs={"width": 0.25, "deconv_channels": 32}, input_size=(64, 64), epochs=1,
                      batch_size=8, workers=0, progress=False, amp=True)
    with caplog.at_level(logging.WARNING, logger="posekit"):
        build_trainer(cfg)
    assert ("without native bf16" in caplog.text) is warned
