"""The model zoo: small committed checkpoints, one markdown card each, one machine-readable index.

``zoo/index.json`` is a list of entries ``{name, file, card, dataset, method, role, model, input_size,
params, flops, metrics, command, budget, wall_seconds, recommended}``; every number in it is measured by
:func:`publish` on the stored file itself, so what an independent scorer loads is what was measured.

An entry with ``base`` (the name of another entry) is not a pose model but an add-on of that one: SCAI's
nets (:mod:`posekit.methods.scai.publish`; float32, they are tiny), used as ``posekit predict --checkpoint
BASE_FILE --scai FILE``. Its ``input_size`` is the base's and its metrics are measured with the base.

Zoo files hold the weights in float16 (half the bytes; loading casts them back to float32) and the
JSON-able config, nothing else: no optimizer state, no history.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from posekit.checkpoint import load_checkpoint, load_model, save_checkpoint
from posekit.strict_json import dumps_strict, finite_or_none

#: The 12 LSP joints that MediaPipe BlazePose also predicts (everything but neck and head top).
LSP_SHARED_WITH_BLAZEPOSE = ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
                             "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
                             "left_wrist"]


def relative_paths(value, anchor):
    """``value`` (a string or a json-like dict / list) with absolute paths inside ``anchor`` or its parent
    written relative to ``anchor``: a published model's provenance names no path of the machine it came from."""
    if isinstance(value, str):
        anchor = Path(anchor).resolve()
        return value.replace(f"{anchor}{os.sep}", "").replace(f"{anchor.parent}{os.sep}", f"..{os.sep}")
    if isinstance(value, dict):
        return {key: relative_paths(item, anchor) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [relative_paths(item, anchor) for item in value]
    return value


def slim_payload(payload: dict, anchor=None) -> dict:
    """A training checkpoint -> ``{"model": float16 weights, "config": ...}`` (integer buffers untouched), the
    config's paths relative to ``anchor`` when given (the folder the zoo lives in)."""
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in payload["model"].items()}
    config = payload["config"] if anchor is None else relative_paths(payload["config"], anchor)
    return {"model": weights, "config": config}


def read_index(zoo_dir="zoo") -> list[dict]:
    path = Path(zoo_dir) / "index.json"
    return json.loads(path.read_text()) if path.exists() else []


def base_entry(entry: dict, entries: list[dict]) -> dict | None:
    """The entry ``entry["base"]`` names (None for a pose model); an unknown base is a ValueError."""
    if not entry.get("base"):
        return None
    found = next((e for e in entries if e["name"] == entry["base"]), None)
    if found is None:
        raise ValueError(f"zoo entry {entry['name']!r}: its base {entry['base']!r} is not in the index")
    return found


def write_index(entries: list[dict], zoo_dir="zoo") -> None:
    path = Path(zoo_dir) / "index.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(dumps_strict(sorted(entries, key=lambda e: e["name"]), indent=1) + "\n")
    tmp.replace(path)


def run_wall_seconds(run_dir) -> float | None:
    """Training seconds summed over a run folder's log.jsonl (None when there is no log)."""
    log = Path(run_dir) / "log.jsonl"
    if not log.exists():
        return None
    return round(sum(json.loads(line).get("seconds", 0.0) for line in log.read_text().splitlines() if line.strip()), 1)


def measure(checkpoint, val_spec: str) -> dict:
    """Val metrics of a checkpoint as the predictor runs it (flip test, the checkpoint's decoding).

    For LSP data also the PCK on the 12 joints shared with BlazePose (``pck@0.2_torso_12``).
    """
    from posekit.engine.evaluate import evaluate_samples
    from posekit.data.formats import load_samples, oks_ground_truth
    from posekit.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint)
    samples = load_samples(val_spec)
    metrics = evaluate_samples(predictor, samples, coco_gt=oks_ground_truth(val_spec))
    if samples and samples[0].skeleton == "lsp":
        shared = evaluate_samples(predictor, samples, joints=LSP_SHARED_WITH_BLAZEPOSE)
        metrics["pck@0.2_torso_12"] = shared["pck@0.2_torso"]
        metrics["auc_torso_12"] = shared["auc_torso"]
    return metrics


def card_markdown(entry: dict, metrics: dict) -> str:
    from posekit.metrics import format_table
    from posekit.skeletons import SKELETONS

    lines = [f"# {entry['name']}", "",
             f"- role: **{entry['role']}**, method: **{entry['method']}**, dataset: {entry['dataset']}",
             f"- model: `{entry['model']['name']}` {json.dumps(entry['model']['kwargs'])}, input "
             f"{entry['input_size'][0]}x{entry['input_size'][1]}",
             f"- params: {entry['params'] / 1e6:.2f} M, FLOPs: {entry['flops'] / 1e9:.3f} G per person (one view; "
             "flip test doubles it)",
             f"- budget: {entry['budget']}",
             f"- training wall time: {entry['wall_seconds'] / 60:.1f} min on this machine's 2 CPU cores"
             if entry.get("wall_seconds") else "- training wall time: not recorded",
             f"- file: `{entry['file']}` (float16 weights + config; `posekit predict --checkpoint {entry['file']} ...`)",
             "", "## Command", "", "```bash", entry["command"], "```", "",
             f"## Validation metrics ({entry['val']}, flip test, {entry['decode']} decoding)", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {'n/a' if v is None else f'{v:.4f}'} |" for k, v in entry["metrics"].items()]
    skeleton = SKELETONS.get(entry.get("skeleton"))
    if skeleton is not None and "per_joint" in metrics:
        lines += ["", "## Per joint", "", format_table(metrics, skeleton)]
    if entry.get("notes"):
        lines += ["", "## Notes", "", entry["notes"]]
    return "\n".join(lines) + "\n"


def publish(checkpoint, name: str, *, val: str, role: str, method: str, dataset: str, command: str, budget: str,
            run_dir=None, zoo_dir="zoo", notes: str = "") -> dict:
    """Slim ``checkpoint`` into ``zoo_dir/name.pt``, measure it on ``val``, write its card, update the index."""
    from posekit.models.flops import model_info

    zoo_dir = Path(zoo_dir)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    target = zoo_dir / f"{name}.pt"
    save_checkpoint(target, slim_payload(load_checkpoint(checkpoint), anchor=zoo_dir.resolve().parent))
    model, config = load_model(target)
    stored = config.to_dict()
    info = model_info(model, input_size=config.input_size)
    metrics = measure(target, val)
    # NaN (COCOeval's "no such objects") is None here already, as the index stores it
    headline = finite_or_none({k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
    entry = {"name": name, "file": target.as_posix(), "card": (zoo_dir / f"{name}.md").as_posix(), "dataset": dataset,
             "val": val, "method": method, "role": role, "skeleton": config.skeleton,
             "model": stored["model"], "input_size": stored["input_size"],
             "decode": config.codec.get("decode", "dark"), "params": int(info["params"]),
             "flops": int(info["flops"]), "metrics": headline, "command": command, "budget": budget,
             "wall_seconds": run_wall_seconds(run_dir) if run_dir else None, "notes": notes}
    (zoo_dir / f"{name}.md").write_text(card_markdown(entry, metrics))
    previous = {e["name"]: e for e in read_index(zoo_dir)}
    entry["recommended"] = previous.get(name, {}).get("recommended", False)
    entries = [e for e in previous.values() if e["name"] != name] + [entry]
    write_index(entries, zoo_dir)
    return entry


def recommend(name: str, zoo_dir="zoo") -> dict:
    """Mark ``name`` as the zoo's recommended model (and no other entry); returns its entry."""
    entries = read_index(zoo_dir)
    if name not in {e["name"] for e in entries}:
        raise ValueError(f"{Path(zoo_dir) / 'index.json'}: no entry named {name!r}")
    chosen = next(e for e in entries if e["name"] == name)
    if chosen.get("base"):
        raise ValueError(f"{name!r} is an add-on of {chosen['base']!r} (not a pose model); recommend a pose model")
    for e in entries:
        e["recommended"] = e["name"] == name
    write_index(entries, zoo_dir)
    return next(e for e in entries if e["name"] == name)


def recommended_entry(entries: list[dict]) -> dict | None:
    return next((e for e in entries if e.get("recommended")), None)


def zoo_table(entries: list[dict]) -> str:
    """Markdown table of the index (the README's zoo section); the recommended model is marked."""
    rows = ["| name | role | method | model | input | params (M) | GFLOPs | PCK@0.2 torso | PCK@0.2 (12 joints) "
            "| PCK@0.05 box | AUC |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        m = e["metrics"]
        cell = lambda key: f"{m[key]:.3f}" if key in m else "-"  # noqa: E731
        mark = " **(recommended)**" if e.get("recommended") else ""
        rows.append(f"| [{e['name']}]({e['card']}){mark} | {e['role']} | {e['method']} | `{e['model']['name']}` "
                    f"| {e['input_size'][0]}x{e['input_size'][1]} | {e['params'] / 1e6:.2f} | {e['flops'] / 1e9:.3f} "
                    f"| {cell('pck@0.2_torso')} | {cell('pck@0.2_torso_12')} | {cell('pck@0.05_box')} "
                    f"| {cell('auc_torso')} |")
    return "\n".join(rows)


#: bytes a zoo file may take; float16 models derived from Google's MoveNet (Apache-2.0) may take more
SIZE_LIMIT = 5 * 2**20
MOVENET_SIZE_LIMIT = 15 * 10**6


def size_limit(config: dict) -> int:
    """The zoo's per-file limit for a checkpoint of this stored config."""
    derived = str(config.get("model", {}).get("name", "")).startswith("movenet_") or \
        "MoveNet" in str(config.get("source", {}).get("model", ""))
    return MOVENET_SIZE_LIMIT if derived else SIZE_LIMIT


def half_weights_ok(path) -> bool:
    """True when every floating tensor of a zoo file is float16 (what the tests check of committed files)."""
    payload = load_checkpoint(path)
    return all(v.dtype == torch.float16 for v in payload["model"].values() if v.is_floating_point())
