"""Speed of the model zoo on this machine's CPU: PyTorch eager against ONNX Runtime.

For every entry of ``zoo/index.json`` (or every ``--checkpoint PATH``; name = file stem) it measures

* the network alone on a random crop tensor (B, 3, H, W), with PyTorch eager (``torch.inference_mode``,
  channels_last, ``torch.set_num_threads(T)``) and with ONNX Runtime (the model exported by
  :func:`posekit.inference.export.export_onnx`, CPUExecutionProvider, ``intra_op_num_threads=T``); both
  run the deploy form of the network (RepVGG branches fused, as the exporter does):
  - per-person latency at batch 1: median and p90 ms over ``--repeats`` timed runs after ``--warmup`` runs;
  - throughput at batch 32: persons/s = 32 / median batch time;
* end-to-end per-person latency at batch 1 through :class:`posekit.inference.predictor.Predictor`
  (crop, network, decode, map back) on a fixed random 256x256 uint8 RGB image and one box, flip test
  off and on (flip test runs two views, so twice the network work);
* achieved GFLOP/s = FLOPs per person (one view, 2 per multiply-accumulate) * persons/s / 1e9 at batch 32,
  as a fraction of the machine's reference: the fp32 ``torch.mm`` rate on n x n matrices (2 n^3 / t,
  best of n = 1024 and 2048) with the same thread count.

Writes ``benchmarks/results/speed.json`` (environment, date, command line, every number) and
``speed.md`` next to it (the table, also printed). All randomness is seeded. Numbers are wall-clock
medians: anything else running on the machine (see the recorded load average) slows them down.

    python benchmarks/speed.py                                   # every zoo model, 2 threads
    python benchmarks/speed.py --checkpoint runs/x/best.pt --threads 1 --out /tmp/speed.json
    python benchmarks/speed.py --checkpoint /tmp/tiny.pt --quick --out /tmp/speed.json   # smoke test
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import ROOT, command, environment, latency_ms, load_average, table, time_calls, write_results
from posekit.checkpoint import build_from_checkpoint
from posekit.inference.export import export_onnx
from posekit.inference.predictor import Predictor
from posekit.models import reparameterize
from posekit.models.flops import model_info
from posekit.zoo import read_index

SEED = 0
BATCH = 32
IMAGE_SIZE = 256
BOX = (64.0, 16.0, 128.0, 224.0)  # x, y, w, h of the one person box in the random image
QUICK = {"repeats": 5, "warmup": 2, "matmul_sizes": (1024,)}
MATMUL_SIZES = (1024, 2048)


# -- what to measure ------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for torch and ONNX Runtime")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs before each measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measure every model this many times, interleaved; report the best round of each number")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="checkpoint to measure instead of the zoo (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "speed.json",
                        help="results json; the markdown table goes next to it as speed.md")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {QUICK['repeats']} repeats, {QUICK['warmup']} warm-up, matmul n=1024 only")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--threads, --repeats and --rounds must be >= 1, --warmup >= 0")
    args.matmul_sizes = MATMUL_SIZES
    if args.quick:
        args.repeats, args.warmup, args.matmul_sizes = QUICK["repeats"], QUICK["warmup"], QUICK["matmul_sizes"]
        args.rounds = 1
    return args


def targets(checkpoints: list[Path]) -> list[dict]:
    """``[{name, path, params?, flops?}]``: the given checkpoints, else every zoo entry."""
    if checkpoints:
        for path in checkpoints:
            if not path.is_file():
                raise SystemExit(f"error: checkpoint not found: {path}")
        return [{"name": path.stem, "path": path} for path in checkpoints]
    entries = read_index(ROOT / "zoo")
    if not entries:
        raise SystemExit(f"error: the model zoo is empty ({ROOT / 'zoo' / 'index.json'} is missing or lists no "
                         "models); publish models into it or pass --checkpoint PATH")
    return [{"name": e["name"], "path": ROOT / e["file"], "params": e.get("params"), "flops": e.get("flops")}
            for e in entries]


# -- environment and timing -----------------------------------------------------------------------
def speed_environment(threads: int) -> dict:
    return environment("cpu", "logical_cpus", "threads", "python", "platform", "torch", "onnxruntime", "numpy",
                       "load_average_1_5_15_min", threads=threads)


def matmul_peak(sizes, repeats: int, warmup: int) -> dict:
    """fp32 ``torch.mm`` GFLOP/s (2 n^3 / median time) per size and the best of them (the reference peak)."""
    gen = torch.Generator().manual_seed(SEED)
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        out = torch.empty(n, n)
        seconds = float(np.median(time_calls(lambda: torch.mm(a, b, out=out), repeats, warmup)))
        rates[str(n)] = round(2 * n ** 3 / seconds / 1e9, 2)
    return {"gflops_per_s": rates, "peak_gflops_per_s": max(rates.values())}


# -- runners --------------------------------------------------------------------------------------
def crops(batch: int, input_size) -> torch.Tensor:
    """Seeded random crop tensor (batch, 3, H, W) for ``input_size`` = (W, H)."""
    w, h = input_size
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(SEED))


def torch_runner(model: torch.nn.Module):
    """x (B, 3, H, W) -> a no-argument call running ``model`` eagerly on it (channels_last, inference mode)."""
    model = model.to(memory_format=torch.channels_last).eval()

    def bind(x: torch.Tensor):
        x = x.contiguous(memory_format=torch.channels_last)

        def run():
            with torch.inference_mode():
                return model(x)
        return run
    return bind


def onnx_session(path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_runner(session):
    name = session.get_inputs()[0].name

    def bind(x: torch.Tensor):
        feed = {name: np.ascontiguousarray(x.numpy(), dtype=np.float32)}
        return lambda: session.run(None, feed)
    return bind


def network_speed(bind, input_size, repeats: int, warmup: int) -> dict:
    """Batch-1 latency (ms per person) and batch-32 throughput (persons/s) of a runner."""
    single = latency_ms(time_calls(bind(crops(1, input_size)), repeats, warmup))
    batch_seconds = float(np.median(time_calls(bind(crops(BATCH, input_size)), repeats, warmup)))
    return {"batch1": single, "batch32_persons_per_s": round(BATCH / batch_seconds, 2)}


def test_image() -> np.ndarray:
    return np.random.default_rng(SEED).integers(0, 256, size=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)


def end_to_end(predictor: Predictor, repeats: int, warmup: int) -> dict:
    """Per-person ``predictor.predict(image, [box])`` latency, flip test off and on."""
    image, box = test_image(), np.array([BOX], np.float32)
    out = {}
    for key, flip in (("no_flip", False), ("flip", True)):
        predictor.flip_test = flip
        out[key] = latency_ms(time_calls(lambda: predictor.predict(image, box), repeats, warmup))
    return out


# -- one model ------------------------------------------------------------------------------------
def describe(target: dict) -> tuple[torch.nn.Module, dict, dict]:
    """(deploy-form model, config, {params, flops}) of a target; the zoo's numbers when it has them."""
    model, config = build_from_checkpoint(target["path"])
    info = model_info(model, input_size=tuple(config["input_size"]))
    sizes = {"params": int(target.get("params") or info["params"]), "flops": int(target.get("flops") or info["flops"])}
    return reparameterize(model).eval(), config, sizes


def benchmark_model(target: dict, args, peak: float) -> dict:
    model, config, sizes = describe(target)
    input_size = tuple(config["input_size"])
    result = {"name": target["name"], "file": str(target["path"]), "model": config["model"],
              "input_size": list(input_size), **sizes, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="posekit_speed_") as tmp:
        onnx_path = export_onnx(target["path"], Path(tmp) / "m.onnx")
        session = onnx_session(onnx_path, args.threads)
        torch_predictor = Predictor.load(target["path"])
        onnx_predictor = Predictor.load(onnx_path)
        onnx_predictor.session = session  # the Predictor's own session uses ORT's default thread count
        for backend, bind, predictor in (("torch", torch_runner(model), torch_predictor),
                                         ("onnx", onnx_runner(session), onnx_predictor)):
            row = network_speed(bind, input_size, args.repeats, args.warmup)
            row["end_to_end"] = end_to_end(predictor, args.repeats, args.warmup)
            result["backends"][backend] = add_rates(row, sizes["flops"], peak)
            print(f"  {target['name']} [{backend}]: batch-1 {row['batch1']['median_ms']:.2f} ms, "
                  f"batch-{BATCH} {row['batch32_persons_per_s']:.1f} persons/s", file=sys.stderr)
    return result


def add_rates(row: dict, flops: int, peak: float) -> dict:
    """Achieved GFLOP/s at batch 32 and its fraction of the matmul reference, added to a backend row."""
    rate = flops * row["batch32_persons_per_s"] / 1e9
    row["gflops_per_s"] = round(rate, 2)
    row["fraction_of_matmul_peak"] = round(rate / peak, 4)
    return row


def best_of_rounds(rounds: list[dict], peak: float) -> dict:
    """One model's rows from several rounds -> the least disturbed value of each number (timeit's rule: noise
    from other tenants of a shared machine only ever adds time): the lowest median latency (with its p90),
    the highest throughput. Every round's rows are kept under ``rounds``."""
    best = json.loads(json.dumps(rounds[0]))
    for backend, row in best["backends"].items():
        rows = [r["backends"][backend] for r in rounds]
        row["batch1"] = min((r["batch1"] for r in rows), key=lambda t: t["median_ms"])
        row["batch32_persons_per_s"] = max(r["batch32_persons_per_s"] for r in rows)
        row["end_to_end"] = {key: min((r["end_to_end"][key] for r in rows), key=lambda t: t["median_ms"])
                             for key in row["end_to_end"]}
        add_rates(row, best["flops"], peak)
    best["rounds"] = [r["backends"] for r in rounds]
    return best


# -- report ---------------------------------------------------------------------------------------
def markdown_table(models: list[dict]) -> str:
    rows = [[m["name"], f"{m['params'] / 1e6:.2f}", f"{m['flops'] / 1e9:.3f}", backend,
             f"{r['batch1']['median_ms']:.2f}", f"{r['batch1']['p90_ms']:.2f}",
             f"{r['end_to_end']['no_flip']['median_ms']:.2f} / {r['end_to_end']['flip']['median_ms']:.2f}",
             f"{r['batch32_persons_per_s']:.1f}", f"{r['gflops_per_s']:.2f}",
             f"{100 * r['fraction_of_matmul_peak']:.1f}"]
            for m in models for backend, r in m["backends"].items()]
    return "\n".join(table(["model", "params (M)", "GFLOPs", "backend", "batch-1 median ms", "p90 ms",
                            "end-to-end ms (no flip / flip)", f"batch-{BATCH} persons/s", "GFLOP/s",
                            "% of matmul peak"], rows))


def markdown_report(result: dict) -> str:
    env, mm = result["environment"], result["matmul"]
    rates = ", ".join(f"n={n}: {v:.1f}" for n, v in mm["gflops_per_s"].items())
    return "\n".join([
        "# Model speed on the CPU", "",
        f"- {result['date']}, `{result['command']}`",
        f"- CPU: {env['cpu']} ({env['logical_cpus']} logical), {env['threads']} threads; torch {env['torch']}, "
        f"onnxruntime {env['onnxruntime']}, numpy {env['numpy']}, python {env['python']}",
        f"- load average (1/5/15 min) at start: {env['load_average_1_5_15_min']}, "
        f"at end: {result['load_average_at_end']}",
        f"- {result['settings']['repeats']} timed runs after {result['settings']['warmup']} warm-up, "
        f"{result['settings'].get('rounds', 1)} interleaved rounds, each number the best round's "
        f"(lowest median latency, highest throughput); "
        f"latency is per person (batch 1); end-to-end = `Predictor.predict` on a {IMAGE_SIZE}x{IMAGE_SIZE} image, "
        "one box",
        f"- fp32 matmul reference (GFLOP/s, best round): {rates}; peak {mm['peak_gflops_per_s']:.1f}", "",
        markdown_table(result["models"]), ""])


def main(argv=None) -> None:
    args = parse_args(argv)
    todo = targets(args.checkpoint)
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    env = speed_environment(args.threads)
    matmuls, rounds = [], []
    for round_ in range(args.rounds):  # models interleaved, so a slow spell of the machine hits one round of each
        matmuls.append(matmul_peak(args.matmul_sizes, args.repeats, args.warmup))
        print(f"round {round_ + 1}/{args.rounds}: matmul peak {matmuls[-1]['peak_gflops_per_s']:.1f} GFLOP/s "
              f"({args.threads} threads)", file=sys.stderr)
        rounds.append([benchmark_model(t, args, matmuls[-1]["peak_gflops_per_s"]) for t in todo])
    matmul = max(matmuls, key=lambda m: m["peak_gflops_per_s"])
    matmul = {**matmul, "rounds": [m["gflops_per_s"] for m in matmuls]}
    models = [best_of_rounds([r[i] for r in rounds], matmul["peak_gflops_per_s"]) for i in range(len(todo))]
    result = {"benchmark": "model speed: network alone (torch eager, ONNX Runtime) and end-to-end Predictor",
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": command("benchmarks/speed.py", argv, python=True),
              "environment": env, "load_average_at_end": load_average(),
              "settings": {"threads": args.threads, "repeats": args.repeats, "warmup": args.warmup, "rounds": args.rounds,
                           "quick": args.quick, "batch": BATCH, "seed": SEED, "image_size": IMAGE_SIZE,
                           "box_xywh": list(BOX)},
              "matmul": matmul, "models": models}
    write_results(result, args.out, markdown_report(result))
    print(markdown_table(models))


if __name__ == "__main__":
    main()
