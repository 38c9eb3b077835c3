"""Helpers shared by the benchmark scripts (``fpd.py``, ``tricks.py``, ``adaptation.py``, ``robustness.py``,
``scai.py``): the repository root, data-spec resolution, train-once-with-resume, latency timing, the recorded
machine state, and reading / atomically writing the results.

Not a script: the benchmarks import it as ``from common import ...``, which works because Python puts a
script's own folder first on ``sys.path`` when it runs as ``python benchmarks/NAME.py``.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def resolve_spec(spec: str) -> str:
    """Make a spec's relative path absolute from the repository root (the script runs from anywhere)."""
    from posekit.data.formats import parse_spec
    fmt, path, split = parse_spec(spec)
    if not Path(path).is_absolute():
        path = str((ROOT / path).resolve())
    return f"{fmt}:{path}" + (f"@{split}" if split else "")


def decoder_options(spec: str | None) -> dict:
    """A row's decoder spec -> Predictor keyword arguments: ``"argmax"`` / ``"dark"`` -> ``{"decode": ...}``,
    ``"dark:K"`` -> DARK with a K-pixel blur (``blur_kernel``), None or ``""`` -> ``{}`` (the checkpoint's own)."""
    if not spec:
        return {}
    decode, _, blur = spec.partition(":")
    return {"decode": decode, **({"blur_kernel": int(blur)} if blur else {})}


def train_once(cfg, run_dir: Path) -> dict:
    """Train (or finish training) one :class:`~posekit.engine.trainer.TrainConfig` whose ``out`` is ``run_dir``.

    A finished training (``done.json`` and ``model.pt`` in ``run_dir``) is not repeated: its ``done.json``
    record is returned. Otherwise training continues from the run folder's ``last.pt``
    (``Trainer(..., resume=True)``) and the record is written to ``done.json``: {checkpoint, seconds_this_run,
    resumed_at_epoch, train_seconds, final_epoch (its numbers), config}.
    """
    from posekit.methods import build_trainer as Trainer
    run_dir = Path(run_dir)
    done = run_dir / "done.json"
    if done.exists() and (run_dir / "model.pt").exists():
        return json.loads(done.read_text())
    start = time.time()
    trainer = Trainer(cfg, resume=True)
    resumed_at = trainer.epoch
    last = trainer.fit()
    record = {"checkpoint": str(run_dir / "model.pt"), "seconds_this_run": round(time.time() - start, 1),
              "resumed_at_epoch": resumed_at,
              "train_seconds": round(sum(r.get("seconds", 0.0) for r in trainer.history), 1),
              "final_epoch": {k: v for k, v in last.items() if isinstance(v, (int, float))},
              "config": cfg.to_dict()}
    done.write_text(json.dumps(record, indent=2) + "\n")
    return record


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    """Median milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (3 decimals)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e3, 3)


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def environment() -> dict:
    """Versions and machine recorded next to the numbers."""
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "logical_cpus": os.cpu_count()}


def load_results(path: Path, budget: dict) -> dict:
    """The results json at ``path`` when it was made with the same ``budget``; otherwise a new, empty table
    ``{"budget": budget, "rows": {}}`` (with a note on stderr when a table of another budget is replaced)."""
    path = Path(path)
    results = json.loads(path.read_text()) if path.exists() else {}
    if results.get("budget") != budget:
        if results.get("rows"):
            print(f"note: {path} holds another budget ({results.get('budget')}); starting a new table",
                  file=sys.stderr)
        results = {"budget": budget, "rows": {}}
    return results


def write_results(results: dict, path: Path, markdown_text: str) -> None:
    """Write ``results`` to the json ``path`` atomically (a hidden temporary file, then a rename; numpy scalars
    become floats), then ``markdown_text`` to the ``.md`` next to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=float) + "\n")
    os.replace(tmp, path)
    path.with_suffix(".md").write_text(markdown_text)
