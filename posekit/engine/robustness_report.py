"""The robustness report: the corruption x severity table (markdown), its heat map, and the output files.

Reads the result dict of :func:`posekit.engine.robustness.run_robustness`.
"""
from __future__ import annotations

import math
import pathlib

import numpy as np

from posekit.data.io import write_atomic
from posekit.strict_json import dumps_strict

__all__ = ["format_markdown", "plot_table", "write_outputs"]


def _pct(value) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{100 * value:.1f}"


def format_markdown(result: dict) -> str:
    """The per-corruption table: rows = corruptions, columns = severities and their mean (percent)."""
    severities = result["severities"]
    metric = result["metric"]
    lines = [f"Robustness of `{result.get('checkpoint') or 'model'}` on `{result['data']}`: {metric} (%), "
             f"{result['n_images']} images, {result['n_samples']} people, seed {result['seed']}."
             + (f" Scored on the {len(result['shared_joints'])} joints that the model's and the data's skeletons share "
                f"({', '.join(result['shared_joints'])})." if result.get("shared_joints") else ""), "",
             "| corruption | " + " | ".join(f"s{s}" for s in severities) + " | mean |",
             "|---|" + "---|" * (len(severities) + 1),
             "| clean | " + " | ".join("" for _ in severities) + f" | {_pct(result['clean'])} |"]
    for name, row in result["table"].items():
        lines.append(f"| {name} | " + " | ".join(_pct(row.get(str(s))) for s in severities)
                     + f" | {_pct(result['per_corruption'][name])} |")
    if result["table"]:
        by_severity = [np.mean([row[str(s)] for row in result["table"].values()]) for s in severities]
        lines.append("| **mean** | " + " | ".join(_pct(float(v)) for v in by_severity) + f" | **{_pct(result['mPC'])}** |")
        note = "" if result["complete"] else f" (severities {','.join(map(str, severities))} only: not comparable " \
                                               "with five-severity mPC)"
        lines += ["", f"clean {_pct(result['clean'])} | mPC {_pct(result['mPC'])} | "
                      f"rPC {_pct(result['rPC'])}{note}"]
    return "\n".join(lines) + "\n"


def plot_table(result: dict, path) -> pathlib.Path:
    """Heat map of the metric, corruptions x severities, annotated; the title gives clean, mPC and rPC."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, severities = list(result["table"]), result["severities"]
    values = np.array([[result["table"][n][str(s)] for s in severities] for n in names], dtype=np.float64) * 100
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(severities), 1.2 + 0.38 * max(1, len(names))), dpi=120)
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=max(100 * result["clean"], np.nanmax(values), 1e-6),
                      aspect="auto")
    for i in range(len(names)):
        for j in range(len(severities)):
            ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if values[i, j] < 0.6 * image.norm.vmax else "black")
    ax.set_xticks(range(len(severities)), [str(s) for s in severities])
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names], fontsize=8)
    ax.set_xlabel("severity")
    ax.set_title(f"{result['metric']} (%): clean {_pct(result['clean'])}, mPC {_pct(result['mPC'])}, "
                 f"rPC {_pct(result['rPC'])}", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(result: dict, out) -> dict[str, pathlib.Path]:
    """``robustness.json`` (everything), ``robustness.md`` (the table) and ``robustness.png`` in ``out``."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "robustness.json", "markdown": out / "robustness.md", "plot": out / "robustness.png"}
    write_atomic(paths["json"], dumps_strict(result, indent=2) + "\n")
    write_atomic(paths["markdown"], format_markdown(result))
    plot_table(result, paths["plot"])
    return paths
