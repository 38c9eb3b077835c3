"""Helpers shared by every benchmark script: the repository root and data specs, timing, the recorded
environment, the one "train once" mechanism, and the study tables (results json + markdown).

Not a script: the benchmarks import it as ``from common import ...``, which works because Python puts a
script's own folder first on ``sys.path`` when it runs as ``python benchmarks/NAME.py``. It imports only the
standard library and NumPy at module level (``peer_mediapipe.py`` pins its threads before torch loads).
"""
from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


# -- data specs and decoders -------------------------------------------------------------------------
def resolve_spec(spec: str) -> str:
    """Make a spec's relative path absolute from the repository root (the script runs from anywhere)."""
    from posekit.data.formats import parse_spec
    fmt, path, split = parse_spec(spec)
    if not Path(path).is_absolute():
        path = str((ROOT / path).resolve())
    return f"{fmt}:{path}" + (f"@{split}" if split else "")


def repo_path(path) -> str:
    """A file path relative to the repository root made absolute (the script runs from anywhere)."""
    return str(path if Path(path).is_absolute() else (ROOT / path).resolve())


def decoder_options(spec: str | None) -> dict:
    """A row's decoder spec -> Predictor keyword arguments: ``"argmax"`` / ``"dark"`` -> ``{"decode": ...}``,
    ``"dark:K"`` -> DARK with a K-pixel blur (``blur_kernel``), None or ``""`` -> ``{}`` (the checkpoint's own)."""
    if not spec:
        return {}
    decode, _, blur = spec.partition(":")
    return {"decode": decode, **({"blur_kernel": int(blur)} if blur else {})}


class Replay:
    """A predictor's predictions on ``samples``, made once and replayed by ``predict_samples`` (for scoring the
    same predictions several ways); every other attribute is the predictor's."""

    def __init__(self, predictor, samples):
        self.predictor, self.samples, self.failures = predictor, list(samples), []
        self.results = list(predictor.predict_samples(self.samples, on_error=lambda s, e: self.failures.append((s, e))))

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    def predict_samples(self, samples, on_error=None):
        if list(samples) != self.samples:
            raise ValueError("Replay holds the predictions of other samples")
        for sample, err in self.failures:
            if on_error is None:
                raise err
            on_error(sample, err)
        yield from self.results


def lsp_scores(predictor, samples) -> dict:
    """PCK@0.2 torso, PCK@0.05 box and AUC of a predictor on LSP ``samples`` (one pass of predictions), over the
    14 joints and over the 12 of ``posekit.zoo.LSP_SHARED_WITH_BLAZEPOSE`` (``..._12``). A model of another
    skeleton (MoveNet's COCO-17) is scored on the joints it shares with LSP: its 14-joint values are None."""
    from posekit.engine.evaluate import evaluate_samples
    from posekit.zoo import LSP_SHARED_WITH_BLAZEPOSE
    replay = Replay(predictor, samples)
    every = evaluate_samples(replay, samples)
    shared = evaluate_samples(replay, samples, joints=LSP_SHARED_WITH_BLAZEPOSE)
    keys = ("pck@0.2_torso", "pck@0.05_box", "auc_torso")
    own = "shared_joints" not in every
    return {**{k: every[k] if own else None for k in keys}, **{f"{k}_12": shared[k] for k in keys},
            "n_people": every["n_evaluated"]}


# -- timing ------------------------------------------------------------------------------------------
def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 0) -> np.ndarray:
    """Seconds of each of ``repeats`` calls of ``fn()``, after ``warmup`` untimed calls: (repeats,)."""
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return times


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3, digits: int | None = 3) -> float:
    """Median milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones, rounded to ``digits``
    decimals (None: not rounded)."""
    ms = float(np.median(time_calls(fn, repeats, warmup))) * 1e3
    return ms if digits is None else round(ms, digits)


def latency_ms(times_s, digits: int = 3, mean: bool = False) -> dict:
    """Seconds per call -> ``{"median_ms", "p90_ms"}`` (and ``"mean_ms"``), rounded to ``digits`` decimals."""
    times_s = np.asarray(times_s, dtype=np.float64)
    out = {"median_ms": round(float(np.median(times_s)) * 1e3, digits),
           "p90_ms": round(float(np.percentile(times_s, 90)) * 1e3, digits)}
    if mean:
        out["mean_ms"] = round(float(times_s.mean()) * 1e3, digits)
    return out


def onnx_latency(session_or_path, feed: dict, threads: int, repeats: int) -> float:
    """Median ms of ``session.run(None, feed)`` (a session, or an ONNX file opened with ``threads`` intra-op
    threads)."""
    import onnxruntime as ort
    session = session_or_path
    if not hasattr(session, "run"):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(session_or_path), options, providers=["CPUExecutionProvider"])
    return median_ms(lambda: session.run(None, feed), repeats)


def export_latency(checkpoint, threads: int, repeats: int) -> float:
    """Median ms of one crop (batch 1) through posekit's ONNX export of ``checkpoint`` (the network alone)."""
    import tempfile
    from posekit.config import PoseConfig
    from posekit.checkpoint import load_checkpoint
    from posekit.inference.export import export_onnx
    w, h = PoseConfig.from_dict(load_checkpoint(checkpoint)["config"]).input_size
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(checkpoint, Path(tmp) / "model.onnx")
        return onnx_latency(path, {"image": np.zeros((1, 3, h, w), np.float32)}, threads, repeats)


class Progress:
    """One line to stderr every ``every`` items: count, seconds so far, time left."""

    def __init__(self, name: str, total: int, every: int = 50, unit: str = "images"):
        self.name, self.total, self.every, self.unit, self.start = name, total, every, unit, time.perf_counter()

    def step(self, done: int, extra: str = "") -> None:
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (self.total - done)
        print(f"[{self.name}] {done}/{self.total} {self.unit}, {elapsed:.0f} s, ~{left:.0f} s left {extra}",
              file=sys.stderr, flush=True)


# -- environment -------------------------------------------------------------------------------------
def cpu_model(default: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo; else ``default`` (None: ``platform.processor()`` or "unknown")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default if default is not None else platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _version(module: str) -> str | None:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


#: environment fields that are not a package's version
_FIELDS: dict[str, Callable[[], object]] = {
    "python": platform.python_version, "platform": platform.platform, "machine": platform.machine,
    "processor": lambda: platform.processor() or platform.machine(), "logical_cpus": os.cpu_count,
    "cpu": cpu_model, "load_average_1_5_15_min": load_average, "opencv": lambda: _version("cv2"),
}
DEFAULT_ENVIRONMENT = ("python", "torch", "numpy", "platform", "logical_cpus")


def environment(*fields: str, **values) -> dict:
    """Versions and machine recorded next to the numbers, in the order asked for.

    fields: names from ``python``, ``platform``, ``machine``, ``processor``, ``logical_cpus``, ``cpu``,
        ``load_average_1_5_15_min``, ``opencv``, or any importable module (its ``__version__``, None when it does
        not import); default ``python, torch, numpy, platform, logical_cpus``.
    values: fixed entries (e.g. ``threads=2``); one named in ``fields`` takes that place, the others follow.
    """
    out = {}
    for name in fields or DEFAULT_ENVIRONMENT:
        out[name] = values.pop(name) if name in values else (_FIELDS[name]() if name in _FIELDS else _version(name))
    return {**out, **values}


def command(script: str, argv: Sequence[str] | None = None, python: bool = False) -> str:
    """The command line of this run, shell-quoted: ``[python] SCRIPT ARGS`` (ARGS: ``argv`` or sys.argv[1:])."""
    return shlex.join((["python"] if python else []) + [script, *(sys.argv[1:] if argv is None else argv)])


# -- trainings --------------------------------------------------------------------------------------
#: The compact LSPET recipe of ``configs/lspet_compact.json`` that the training studies share, pinned here so that
#: a change of the trainer's defaults cannot change a study: heatmap sigma 2, DARK decoding, AdamW lr 2e-3 with
#: weight decay 1e-4, 200 warm-up iterations, cosine decay to 1% of the lr.
RECIPE = {"sigma": 2.0, "decode": "dark", "lr": 2e-3, "weight_decay": 1e-4, "warmup_iters": 200,
          "final_lr_ratio": 0.01}


def add_training_args(p, workers: int = 2) -> None:
    """The loader options every training study has: ``--batch-size``, ``--max-iters``, ``--workers``."""
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-iters", type=int, help="cap iterations per epoch (smoke tests)")
    p.add_argument("--workers", type=int, default=workers, help="data-loading worker processes")


def train_config(train: str, out: Path, args, **options):
    """A :class:`~posekit.engine.trainer.TrainConfig` of :data:`RECIPE` on ``train`` (no validation) writing to
    ``out``, with the loader options of :func:`add_training_args` and ``options`` (model, epochs, seed, ...)."""
    from posekit.engine.trainer import TrainConfig
    return TrainConfig(train=train, val=None, out=str(out), **RECIPE, batch_size=args.batch_size,
                       workers=args.workers, max_iters_per_epoch=args.max_iters, progress=sys.stderr.isatty(),
                       **options)


# -- train once --------------------------------------------------------------------------------------
def run_once(run_dir: Path, fit: Callable[[], dict], key=None) -> dict:
    """The benchmarks' one "train once" mechanism: ``fit()`` unless ``run_dir/done.json`` says it has finished.

    A ``done.json`` record whose checkpoint exists (and whose ``key`` equals ``key``, for trainings whose run
    folder name does not pin every setting) is returned as is. Otherwise ``fit()`` runs (it resumes by itself
    from what the run folder holds) and returns ``{"checkpoint": path, ...}``; that record, with
    ``seconds_this_run`` (and ``key``), is written to ``done.json`` and returned.
    """
    run_dir = Path(run_dir)
    done = run_dir / "done.json"
    key = None if key is None else json.loads(json.dumps(key))
    if done.exists():
        record = json.loads(done.read_text())
        if Path(record["checkpoint"]).exists() and record.get("key") == key:
            return record
    start = time.time()
    record = fit()
    record = {"checkpoint": str(record["checkpoint"]), "seconds_this_run": round(time.time() - start, 1),
              **{k: v for k, v in record.items() if k != "checkpoint"}}
    if key is not None:
        record["key"] = key
    run_dir.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(record, indent=2) + "\n")
    return record


def train_once(cfg, run_dir: Path) -> dict:
    """Train (or finish training) one :class:`~posekit.engine.trainer.TrainConfig` whose ``out`` is ``run_dir``
    (:func:`run_once`): an unfinished training continues from the run folder's ``last.pt``
    (``Trainer(..., resume=True)``; a folder whose ``last.pt`` is already at the last epoch trains no further).
    Returns the ``done.json`` record: {checkpoint, seconds_this_run, resumed_at_epoch, train_seconds,
    final_epoch (its numbers), config}.
    """
    def fit() -> dict:
        from posekit.methods import build_trainer as Trainer
        trainer = Trainer(cfg, resume=True)
        resumed_at = trainer.epoch
        last = trainer.fit()
        return {"checkpoint": str(Path(run_dir) / "model.pt"), "resumed_at_epoch": resumed_at,
                "train_seconds": round(sum(r.get("seconds", 0.0) for r in trainer.history), 1),
                "final_epoch": {k: v for k, v in last.items() if isinstance(v, (int, float))},
                "config": cfg.to_dict()}
    return run_once(run_dir, fit)


def checkpoint_flops(checkpoint) -> float:
    """FLOPs of one crop through a checkpoint's network at its own input size."""
    from posekit.checkpoint import build_from_checkpoint, load_checkpoint
    from posekit.models.flops import count_flops
    model, cfg = build_from_checkpoint(load_checkpoint(checkpoint))
    return float(count_flops(model, tuple(cfg["input_size"])))


def reused_checkpoint(path) -> dict:
    """The record of a given, already trained checkpoint (in place of a :func:`train_once` record)."""
    return {"checkpoint": str(path), "train_seconds": None, "final_epoch": {}, "config": None, "reused": True}


# -- study tables ------------------------------------------------------------------------------------
def portable(value):
    """``value`` (a string, or a json-like dict / list of them) with this checkout's absolute paths written
    relative to the repository root, so that committed results name no path of the machine they ran on."""
    if isinstance(value, str):
        return value.replace(f"{ROOT}{os.sep}", "").replace(f"{ROOT.parent}{os.sep}", f"..{os.sep}")
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item) for item in value]
    return value


def load_results(path: Path, budget: dict) -> dict:
    """The results json at ``path`` when it was made with the same ``budget``; otherwise a new, empty table
    ``{"budget": budget, "rows": {}}`` (with a note on stderr when a table of another budget is replaced)."""
    path = Path(path)
    results = json.loads(path.read_text()) if path.exists() else {}
    budget = portable(budget)
    if results.get("budget") != budget:
        if results.get("rows"):
            print(f"note: {path} holds another budget ({results.get('budget')}); starting a new table",
                  file=sys.stderr)
        results = {"budget": budget, "rows": {}}
    return results


def write_results(results: dict, path: Path, markdown_text: str | None = None, indent: int = 2) -> None:
    """Write ``results`` to the json ``path`` atomically (numpy scalars become floats), then ``markdown_text``
    (if given) to the ``.md`` next to it."""
    from posekit.data.io import write_atomic
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(portable(results), indent=indent, default=float) + "\n")
    if markdown_text is not None:
        write_atomic(path.with_suffix(".md"), portable(markdown_text))


def save_study(results: dict, path: Path, title: str, markdown: Callable[[dict], str]) -> None:
    """The json (with the table in ``results["markdown"]``) and the ``.md`` next to it, headed ``# title``."""
    results["markdown"] = markdown(results)
    write_results(results, path, f"# {title}\n\n" + results["markdown"])


def add_study_args(p, name: str) -> None:
    """The options of a resumable study table: ``--rows``, ``--list``, ``--out`` (``benchmarks/results/NAME.json``),
    ``--runs`` (``runs/NAME``) and ``--force``."""
    p.add_argument("--rows", help="comma-separated row names (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="print the row names and exit")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / f"{name}.json",
                   help=f"results json; {name}.md goes next to it")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / name, help="parent of the run folders")
    p.add_argument("--force", action="store_true", help="recompute rows that already have results")


def selected_rows(p, args, rows: Sequence[str], default: Sequence[str] | None = None) -> list[str]:
    """``--rows`` as a list (``default``, else every row, when not given); an unknown name is a usage error."""
    names = list(rows if default is None else default) if not args.rows else \
        [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in names if r not in rows]
    if unknown:
        p.error(f"unknown rows {unknown}; choose from {list(rows)}")
    return names


def list_rows(listing: dict[str, str], width: int) -> int:
    """``--list``: one line per row, its name padded to ``width``, then what it is."""
    for name, text in listing.items():
        print(f"{name:{width}s} {text}")
    return 0


def open_study(out: Path, budget: dict, **fields) -> dict:
    """The table at ``out`` for ``budget`` (:func:`load_results`), with ``fields`` (environment, command, ...) set."""
    results = load_results(out, budget)
    results.update(fields)
    return results


def finish_study(results: dict, out: Path, markdown: Callable[[dict], str], notes: Iterable[str] = ()) -> int:
    """The end of a study run: ``notes`` printed, then the table written (json + markdown) and printed."""
    for line in notes:
        print(line)
    write_results(results, out, markdown(results))
    print(markdown(results))
    return 0


def fill_rows(results: dict, names: Iterable[str], compute: Callable[[str], dict], out: Path,
              markdown: Callable[[dict], str], force: bool = False,
              before_write: Callable[[dict], object] | None = None) -> None:
    """The resumable loop of a study table: every row of ``names`` not yet in ``results["rows"]`` (all with
    ``force``) becomes ``compute(name)`` (+ ``"date"``), and the table is written after every row, so an
    interrupted run keeps what it finished; finished rows are reported and skipped. Rows another process wrote
    to ``out`` meanwhile (the same budget) are kept, so two runs may fill different rows of one table at once."""
    for name in names:
        if name in results["rows"] and not force:
            print(f"{name}: done (in {out}), skipped")
            continue
        row = compute(name)
        row.setdefault("date", datetime.datetime.now().isoformat(timespec="seconds"))
        written = load_results(out, results["budget"])["rows"] if Path(out).exists() else {}
        results["rows"] |= {name: row} | {other: r for other, r in written.items() if other not in results["rows"]}
        if before_write is not None:
            before_write(results)
        write_results(results, out, markdown(results))


def table(header: Sequence[str], rows: Iterable[Sequence] = (), align: str | Sequence[str] = "---") -> list[str]:
    """Markdown table lines: ``| a | b |``, the rule (``align`` per column, e.g. ``---:``), then the rows."""
    aligns = [align] * len(header) if isinstance(align, str) else list(align)
    return ["| " + " | ".join(header) + " |", "|" + "".join(f"{a}|" for a in aligns),
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]


def pct(value) -> str:
    """A fraction as a percentage with one decimal; ``-`` for None / NaN / inf."""
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"
