"""Shared fixtures of the method tests."""
import pytest

from posekit.data.synth import generate_dataset
from posekit.engine.trainer import TrainConfig
from posekit.methods import build_trainer


@pytest.fixture(scope="session")
def scai_pose(tmp_path_factory):
    """A tiny LSP pose model (2 iterations) and its synthetic data, trained once for both SCAI designs' tests:
    {"ann": annotations path, "spec": its data spec, "pose": the model.pt}."""
    root = tmp_path_factory.mktemp("scai_pose")
    ann = generate_dataset(root / "data", 24, style="flat", skeleton="lsp", seed=1, size=(96, 96))
    cfg = TrainConfig(train=f"coco:{ann}", val=None, out=str(root / "pose"), model="simplebaseline_r18",
                      model_kwargs={"width": 0.25, "deconv_channels": 32}, input_size=(64, 64), epochs=1,
                      batch_size=8, lr=1e-3, warmup_iters=2, workers=0, seed=3, progress=False, max_iters_per_epoch=2)
    build_trainer(cfg).fit()
    return {"ann": ann, "spec": f"coco:{ann}", "pose": root / "pose" / "model.pt"}
