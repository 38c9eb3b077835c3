"""AdaBN (Li, Wang, Shi, Liu & Hou, "Revisiting Batch Normalization For Practical Domain Adaptation", 2016).

The simplest source-free adaptation, and the baseline any other one has to beat: keep every learned weight of
the source model and only re-estimate each BatchNorm layer's running mean and variance on the unlabelled target
images. A network whose features are normalised with target statistics sees target images the way it saw
source images in training, as far as first and second moments go. No gradient, no labels, one pass.

    from posekit.methods.adabn import adapt_batchnorm_checkpoint
    adapt_batchnorm_checkpoint("zoo/lspet_compact.pt", "lsp:DATA@train", "runs/adabn/model.pt")

The target crops are the person boxes cut exactly as at test time (no augmentation), so the statistics are
those of the images the adapted model will see.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from posekit.config import DEFAULT_PADDING
from posekit.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint


def adapt_batchnorm(model: torch.nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace every BatchNorm layer's running statistics by their plain average over ``batches``.

    model: any network; only its ``_BatchNorm`` layers change (the learned affine weights stay).
    batches: (N, 3, H, W) input tensors. Returns the number of images seen. The model ends in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("the model has no BatchNorm layer: AdaBN has nothing to re-estimate")
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over all batches, not an exponential one
    model.eval()
    for m in norms:
        m.train()
    seen = 0
    try:
        with torch.no_grad():
            for images in batches:
                model(images)
                seen += int(images.shape[0])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    if seen == 0:
        raise ValueError("no target images: the BatchNorm statistics would be empty")
    return seen


def target_crops(config: dict, spec: str, *, batch_size: int = 32, workers: int = 0, limit: int | None = None):
    """Batches of the test-time person crops of ``spec`` for a checkpoint ``config`` (labels never read)."""
    from posekit.codecs import build_codec
    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples

    samples = load_samples(spec)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise ValueError(f"no people in {spec}")
    num_keypoints = int(config["num_keypoints"])
    for s in samples:  # withhold labels (and match the model's joint count, whatever the format has)
        s.keypoints = np.zeros((num_keypoints, 3), np.float32)
    dataset = TopDownDataset(samples, build_codec(config["codec"]), tuple(config["input_size"]),
                             flip_index=np.arange(num_keypoints), train=False, padding=config.get("padding", DEFAULT_PADDING))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    for batch in loader:
        yield batch["image"].contiguous(memory_format=torch.channels_last)


def adapt_batchnorm_checkpoint(source, target: str, out, *, batch_size: int = 32, workers: int = 0,
                               limit: int | None = None) -> dict:
    """Source checkpoint + unlabelled target spec -> an AdaBN checkpoint at ``out`` (same config, loadable by
    ``Predictor.from_checkpoint``). Returns {"checkpoint", "images"}."""
    payload = load_checkpoint(source)
    model, config = build_from_checkpoint(payload)
    model = model.to(memory_format=torch.channels_last)
    seen = adapt_batchnorm(model, target_crops(config, target, batch_size=batch_size, workers=workers, limit=limit))
    state = {k: v.to(payload["model"][k].dtype) if k in payload["model"] else v for k, v in model.state_dict().items()}
    config = dict(config) | {"adaptation": {"method": "adabn", "source": str(source), "target": target,
                                            "images": seen}}
    save_checkpoint(out, {"model": state, "config": config})
    return {"checkpoint": str(out), "images": seen}
