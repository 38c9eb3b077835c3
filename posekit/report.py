"""Plots and markdown for training reports: training curve, PCK-vs-threshold curve, prediction grid."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from posekit.strict_json import dumps_strict


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_training_curve(history: list[dict], path) -> None:
    """history: the trainer's per-epoch records (loss, optional val metrics) -> PNG."""
    plt = _plt()
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["loss"] for r in history], "o-", label="train loss")
    ax.set_xlabel("epoch"), ax.set_ylabel("heatmap MSE"), ax.set_yscale("log")
    val = [(r["epoch"], r["val"]["pck@0.2_torso"]) for r in history if "val" in r and "pck@0.2_torso" in r["val"]]
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "s-", color="tab:green", label="val PCK@0.2")
        ax2.set_ylabel("val PCK@0.2 (torso)"), ax2.set_ylim(0, 1)
        ax2.legend(loc="center right")
    ax.legend(loc="upper right")
    ax.set_title("training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pck_curve(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, xlabel="threshold α (× torso)") -> None:
    """curves: label -> (alphas, pck) -> PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, (alphas, values) in curves.items():
        ax.plot(alphas, values, label=label)
    ax.set_xlabel(xlabel), ax.set_ylabel("PCK"), ax.set_ylim(0, 1), ax.grid(alpha=.3), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def prediction_grid(images: list[np.ndarray], path, cols: int = 4, size: int = 192) -> None:
    """Tile drawn images (H, W, 3) uint8 into one PNG, each letterboxed to size x size."""
    import cv2
    tiles = []
    for img in images:
        h, w = img.shape[:2]
        s = size / max(h, w)
        small = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        tile = np.zeros((size, size, 3), np.uint8)
        tile[:small.shape[0], :small.shape[1]] = small
        tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.zeros((size, size, 3), np.uint8))
    rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def write_json(path, obj) -> None:
    Path(path).write_text(dumps_strict(obj, indent=2) + "\n")
