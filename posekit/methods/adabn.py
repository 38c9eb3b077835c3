"""AdaBN (Li, Wang, Shi, Liu & Hou, "Revisiting Batch Normalization For Practical Domain Adaptation", 2016).

The simplest source-free adaptation, and the baseline any other one has to beat: keep every learned weight of
the source model and only re-estimate each BatchNorm layer's running mean and variance on the unlabelled target
images. A network whose features are normalised with target statistics sees target images the way it saw
source images in training, as far as first and second moments go. No gradient, no labels, one pass.

    from posekit.methods.adabn import adapt_batchnorm_checkpoint
    adapt_batchnorm_checkpoint("zoo/lspet_compact.pt", "lsp:DATA@train", "runs/adabn/model.pt")

The target crops are the person boxes cut exactly as at test time (no augmentation), so the statistics are
those of the images the adapted model will see.

**Folded BatchNorm** (MoveNet's released graphs, imported unchanged): each BatchNorm was merged into the
convolution before it, so no running statistics are left to re-estimate. Its equivalent here
(:func:`align_conv_statistics`): a folded conv's output ``y = γ (x - μ_s) / σ_s + β`` has mean β and standard
deviation |γ| per channel on source images, while AdaBN's output on target images has exactly those moments.
So each conv output is mapped, per channel, from its target moments to its source moments,
``y' = (y - m_t) · s_s / s_t + m_s``, which is again a conv (scaled weights, shifted bias). The source moments
come from images of the source domain (for MoveNet: COCO photos); the layers are aligned in network order, each
on the outputs of the already aligned layers before it, as AdaBN's layer-wise normalisation sees them.
"""
from __future__ import annotations

from typing import Callable, Iterable

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
        raise ValueError("the model has no BatchNorm layer: AdaBN has nothing to re-estimate (BatchNorm folded into "
                         "the convs, as in MoveNet? align them instead: posekit adapt --method adabn --source-images "
                         "SPEC)")
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


def target_crops(config: dict, spec: str, *, batch_size: int = 32, workers: int = 0, limit: int | None = None,
                 seed: int | None = None):
    """Batches of the test-time person crops of ``spec`` for a checkpoint ``config`` (labels never read); with
    ``limit``, the first ``limit`` people, or with ``seed`` a random subset of that many."""
    from posekit.codecs import build_codec
    from posekit.data.dataset import TopDownDataset
    from posekit.data.formats import load_samples

    samples = load_samples(spec)
    if limit is not None:
        order = np.random.default_rng(seed).permutation(len(samples)) if seed is not None else np.arange(len(samples))
        samples = [samples[i] for i in sorted(order[:limit])]
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


#: target crops per batch of the folded alignment: bounded memory (Thunder: about 4 GB at 128), 4 batches of 512
ALIGN_BATCH = 128
#: channels per float64 copy in :func:`_channel_moments`: a copy of all of them at once was what ran Thunder's
#: alignment over 512 crops out of 24 GB
MOMENT_CHANNELS = 8


def _channel_moments(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) -> per-channel mean and standard deviation (C,) over N, H, W, in float64, copying
    :data:`MOMENT_CHANNELS` channels at a time."""
    means, stds = [], []
    for start in range(0, y.shape[1], MOMENT_CHANNELS):
        part = y[:, start:start + MOMENT_CHANNELS]
        part = part.double().transpose(0, 1).reshape(part.shape[1], -1)
        means.append(part.mean(dim=1))
        stds.append(part.std(dim=1, unbiased=False))
    return torch.cat(means), torch.cat(stds)


def source_conv_moments(model: torch.nn.Module, convs: dict, batches: Iterable[torch.Tensor]) -> dict:
    """Per-channel output moments of each conv in ``convs`` (name -> Conv2d) of the unchanged ``model`` over
    ``batches`` (N, 3, H, W). Returns {name: (mean (C,), std (C,))}, accumulated over all batches."""
    sums = {name: [0.0, 0.0, 0] for name in convs}
    hooks = []
    for name, conv in convs.items():
        def record(module, inputs, output, name=name):
            y = output.double().transpose(0, 1).reshape(output.shape[1], -1)
            total = sums[name]
            total[0], total[1], total[2] = total[0] + y.sum(1), total[1] + (y * y).sum(1), total[2] + y.shape[1]
        hooks.append(conv.register_forward_hook(record))
    model.eval()
    try:
        with torch.no_grad():
            for images in batches:
                model(images)
    finally:
        for hook in hooks:
            hook.remove()
    moments = {}
    for name, (total, squares, count) in sums.items():
        if count == 0:
            raise ValueError("no source images: the source statistics would be empty")
        mean = total / count
        moments[name] = (mean, (squares / count - mean * mean).clamp_min(0).sqrt())
    return moments


def align_conv_statistics(model: torch.nn.Module, source_moments: dict, target_images: torch.Tensor,
                          convs: dict, eps: float = 1e-5, batch_size: int | None = None) -> dict:
    """AdaBN for folded BatchNorm: fold ``y' = (y - m_t) s_s / s_t + m_s`` into each conv of ``convs``.

    model: changed in place (conv weights and biases only; every conv in ``convs`` needs a bias).
    source_moments: :func:`source_conv_moments` of the unchanged model on source images.
    target_images: (N, 3, H, W) target crops, passed through the network once, ``batch_size`` at a time (None:
        all in one batch). Within a batch each conv's output is aligned with that batch's own moments, in
        network order, as BatchNorm in training mode normalises a batch; the moments folded in at the end are
        the batches' means and mean variances weighted by size, as :func:`adapt_batchnorm` averages BatchNorm's
        statistics. One batch gives each layer's exact moments over all crops; a batch bounds the memory (the
        activations of ``batch_size`` crops: 512 of Thunder's in one batch need more than 24 GB).
    Returns {name: (scale (C,), shift (C,))} of what was folded in. The model ends in eval mode.
    """
    n = int(target_images.shape[0])
    step = n if batch_size is None else int(batch_size)
    if n == 0 or step < 1:
        raise ValueError(f"align_conv_statistics needs target images and batch_size >= 1, got {n} and {batch_size}")
    seen: dict[str, list] = {name: [] for name in convs}  # per batch: (size, mean, std)
    hooks = []
    for name, conv in convs.items():
        if conv.bias is None:
            raise ValueError(f"conv {name} has no bias: a folded BatchNorm always leaves one")

        def align(module, inputs, output, name=name):
            mean_t, std_t = _channel_moments(output)
            seen[name].append((output.shape[0], mean_t, std_t))
            scale, shift = _alignment(mean_t, std_t, *source_moments[name], eps)
            # in place: the crops' activations are the memory this pass needs
            return output.mul_(scale.to(output).view(1, -1, 1, 1)).add_(shift.to(output).view(1, -1, 1, 1))
        hooks.append(conv.register_forward_hook(align))
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, step):
                model(target_images[start:start + step])
    finally:
        for hook in hooks:
            hook.remove()
    missing = [name for name in convs if not seen[name]]
    if missing:
        raise ValueError(f"{len(missing)} convs never ran on the target images (e.g. {sorted(missing)[0]})")
    folded = {}
    with torch.no_grad():
        for name, module in convs.items():
            scale, shift = _alignment(*_pooled(seen[name]), *source_moments[name], eps)
            folded[name] = (scale, shift)
            shape = (-1,) + (1,) * (module.weight.dim() - 1)
            module.weight.mul_(scale.to(module.weight).view(shape))
            module.bias.copy_(scale.to(module.bias) * module.bias + shift.to(module.bias))
    return folded


def _alignment(mean_t, std_t, mean_s, std_s, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) mapping target moments to source moments per channel; a channel constant on the target
    keeps its scale (its mean still moves): no division by ~0."""
    scale = torch.where(std_t > eps, std_s / std_t.clamp_min(eps), torch.ones_like(std_t))
    return scale, mean_s - scale * mean_t


def _pooled(batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    """[(size, mean (C,), std (C,))] per batch -> the size-weighted mean and root mean variance (one batch: its
    own, unchanged)."""
    if len(batches) == 1:
        return batches[0][1], batches[0][2]
    sizes = torch.tensor([b[0] for b in batches], dtype=torch.float64)[:, None]
    means = torch.stack([b[1] for b in batches])
    variances = torch.stack([b[2] for b in batches]) ** 2
    total = sizes.sum()
    return (sizes * means).sum(0) / total, ((sizes * variances).sum(0) / total).sqrt()


def aligned_convs(model: torch.nn.Module, keep: Callable[[str], bool] = lambda name: True) -> dict:
    """The convs a folded-BatchNorm alignment adapts: every Conv2d with a bias whose name ``keep`` accepts,
    except the per-joint output layers (:class:`~posekit.models.heads.HeatmapHead`, never followed by a norm)."""
    from posekit.models.heads import HeatmapHead
    return {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)
            and not isinstance(m, HeatmapHead) and m.bias is not None and keep(name)}


def _counted(batches: Iterable[torch.Tensor], sizes: list[int]):
    """``batches`` unchanged, appending each one's size to ``sizes`` on the way."""
    for batch in batches:
        sizes.append(int(batch.shape[0]))
        yield batch


def adapt_folded_checkpoint(source, target: str, source_images: str, out, *, limit: int = 512,
                            batch_size: int = 32, workers: int = 0, layers: str = "all", seed: int = 0,
                            align_batch: int | None = ALIGN_BATCH) -> dict:
    """AdaBN for a source checkpoint whose BatchNorm is folded (MoveNet): :func:`align_conv_statistics` with the
    source moments from ``source_images`` (a spec of the source's domain) and the target moments from ``limit``
    target crops (a seeded random subset), aligned ``align_batch`` at a time (None: one batch). ``layers``: "all" (every conv with a bias but the
    outputs) or "trunk" (the backbone's only, names starting with ``trunk.``). Returns {"checkpoint",
    "images", "source_images", "convs", "align_batch"}."""
    if layers not in ("all", "trunk"):
        raise ValueError(f"layers must be 'all' or 'trunk', got {layers!r}")
    payload = load_checkpoint(source)
    model, config = build_from_checkpoint(payload)
    model.eval()
    convs = aligned_convs(model, (lambda name: True) if layers == "all" else (lambda name: name.startswith("trunk.")))
    if not convs:
        raise ValueError(f"source {source}: no convolution with a bias to align")
    source_seen: list[int] = []  # the source crops stream through, one batch in memory at a time
    moments = source_conv_moments(model, convs, _counted(target_crops(config, source_images, batch_size=batch_size,
                                                                      workers=workers), source_seen))
    crops = torch.cat(list(target_crops(config, target, batch_size=batch_size, workers=workers, limit=limit,
                                        seed=seed)))
    align_conv_statistics(model, moments, crops, convs, batch_size=align_batch)
    state = {k: v.to(payload["model"][k].dtype) if k in payload["model"] else v for k, v in model.state_dict().items()}
    seen = int(crops.shape[0])
    config = dict(config) | {"adaptation": {"method": "adabn_folded", "source": str(source), "target": target,
                                            "images": seen, "source_images": source_images, "layers": layers,
                                            "align_batch": align_batch}}
    save_checkpoint(out, {"model": state, "config": config})
    return {"checkpoint": str(out), "images": seen, "source_images": sum(source_seen), "convs": len(convs),
            "align_batch": align_batch}
