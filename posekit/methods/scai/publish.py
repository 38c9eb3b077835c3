"""SCAI nets as a zoo entry: the nets of one pose model (the entry's ``base``, another zoo entry), their card
and their line in ``zoo/index.json``, every number measured on the stored file with the stored base.

    python -m posekit.methods.scai.publish runs/scai/scai.pt --name NAME --base lspet_movenet_lightning \
        --val lsp:../shared/datasets/lspet@val --command "..." --budget "..."

A SCAI zoo file holds the three nets' float32 weights (they are tiny) and their config without the training
history; ``config["base"]`` names the pose model they belong to, so a mismatched ``--checkpoint`` is refused
with that name (:func:`~posekit.methods.scai.corrector.check_compatible`). The index entry has the fields of a
pose model's entry (``model`` is ``scai_<design>`` with the nets' config, ``input_size`` the base's) plus
``base``; ``metrics`` on ``val`` are those of the whole pipeline (correction + test-time training:
``pck@0.2_torso`` ...), of the correction alone (``correct_...``) and of the base alone (``base_...``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from posekit.checkpoint import save_checkpoint
from posekit.strict_json import finite_or_none

__all__ = ["publish_scai", "scai_card", "main"]

#: the metrics of each mode kept in the index entry, under the mode's prefix (no prefix: the whole pipeline,
#: correction + test-time training, what the zoo table shows)
HEADLINE = ("pck@0.2_torso", "pck@0.05_box", "distal_pck@0.2_torso", "distal_pck@0.05_box")
PREFIX = {"none": "base_", "correct": "correct_", "tta": ""}


def nets_flops(nets) -> int:
    """FLOPs per person of the three nets' forward passes: 2 x multiply-adds of every Linear / Conv2d, over the
    six chains (Conv2d at the heatmap resolution of its input is approximated by the full heatmap)."""
    import torch
    macs = 0
    for m in nets.modules():
        if isinstance(m, torch.nn.Linear):
            macs += m.in_features * m.out_features
        elif isinstance(m, torch.nn.Conv2d):
            w, h = nets.heatmap_size
            macs += m.weight.numel() * w * h // (m.stride[0] * m.stride[1])
    return int(2 * macs * len(nets.chains))


def publish_scai(scai_checkpoint, name: str, *, base: str, val: str, command: str, budget: str, zoo_dir="zoo",
                 notes: str = "", limit: int | None = None) -> dict:
    """Store ``scai_checkpoint`` as ``zoo_dir/name.pt`` for the zoo entry ``base``, measure it on ``val`` with
    that base (flip test; modes none / correct / tta), write the card and the index entry; returns the entry."""
    from posekit.data.formats import load_samples
    from posekit.inference.predictor import Predictor
    from posekit.methods.scai.adapt import evaluate_modes
    from posekit.methods.scai.corrector import SCAICorrector, load_scai, scai_payload
    from posekit.methods.scai.designs import design_of
    from posekit.zoo import read_index, write_index

    zoo_dir = Path(zoo_dir)
    entries = {e["name"]: e for e in read_index(zoo_dir)}
    if base not in entries:
        raise ValueError(f"{zoo_dir / 'index.json'}: no base entry named {base!r}")
    base_entry = entries[base]
    base_file = Path(base_entry["file"]) if Path(base_entry["file"]).exists() else zoo_dir.parent / base_entry["file"]
    nets, config = load_scai(scai_checkpoint)
    stored = {k: v for k, v in config.items() if k != "history"}
    stored["base"] = base
    stored["pose"] = {**stored["pose"], "checkpoint": base_entry["file"]}
    target = zoo_dir / f"{name}.pt"
    save_checkpoint(target, scai_payload(nets, stored))
    corrector = SCAICorrector.wrap(Predictor.load(base_file), target)  # refuses nets of another base
    samples = load_samples(val)[:limit] if limit else load_samples(val)
    t0 = time.time()
    results = evaluate_modes(corrector, samples, reuse_network=True)
    history = config.get("history") or []
    entry = {"name": name, "file": target.as_posix(), "card": (zoo_dir / f"{name}.md").as_posix(),
             "dataset": config["train"]["data"], "val": val, "method": f"scai ({design_of(config['nets'])} nets)",
             "role": "scai", "base": base, "skeleton": config.get("skeleton"),
             "model": {"name": f"scai_{design_of(config['nets'])}",
                       "kwargs": {k: v for k, v in config["nets"].items() if k != "chains"}},
             "input_size": base_entry["input_size"], "decode": base_entry.get("decode", "dark"),
             "params": int(sum(p.numel() for p in nets.parameters())), "flops": nets_flops(nets),
             "metrics": finite_or_none({PREFIX[mode] + k: round(r[k], 4) for mode, r in results.items()
                                        for k in HEADLINE if k in r}),
             "command": command, "budget": budget,
             "wall_seconds": round(sum(h.get("seconds", 0.0) for h in history), 1) or None,
             "eval_seconds": round(time.time() - t0, 1), "notes": notes, "recommended": False}
    (zoo_dir / f"{name}.md").write_text(scai_card(entry, base_entry, config, len(samples)))
    write_index([e for e in entries.values() if e["name"] != name] + [entry], zoo_dir)
    return entry


def scai_card(entry: dict, base_entry: dict, config: dict, n_people: int) -> str:
    train, tta, nets = config["train"], config.get("tta", {}), config["nets"]
    lines = [f"# {entry['name']}", "",
             f"SCAI nets ({entry['model']['kwargs'].get('design', 'heatmap')} design) for the zoo model **{entry['base']}** (`{base_entry['file']}`): they "
             "correct its six distal joints (wrists, ankles, hips), optionally with test-time training on the "
             "test images (`posekit.methods.scai`).", "",
             f"- base: `{entry['base']}` (skeleton {entry['skeleton']}, input {entry['input_size'][0]}x"
             f"{entry['input_size'][1]}, heatmaps {nets['heatmap_size'][0]}x{nets['heatmap_size'][1]})",
             f"- nets: {entry['params']:,} parameters, {entry['flops'] / 1e6:.2f} MFLOPs per person; "
             f"{json.dumps(entry['model']['kwargs'])}",
             f"- trained on {train['data']}, seed {train['seed']}; budget: {entry['budget']}",
             f"- training wall time: {entry['wall_seconds'] / 60:.1f} min (one CPU thread, shared machine)"
             if entry.get("wall_seconds") else "- training wall time: not recorded",
             f"- test-time training defaults: {tta.get('steps')} Adam step(s) per batch at lr {tta.get('lr')}, "
             f"online", "",
             "## Use", "", "```bash",
             f"posekit predict IMG --checkpoint {base_entry['file']} --scai {entry['file']} --tta scai --out p.json",
             "```", "", "```python", "from posekit.inference.predictor import Predictor",
             f'predictor = Predictor.load("{base_entry["file"]}", scai="{entry["file"]}", tta="scai")', "```", "",
             "## Command", "", "```bash", entry["command"], "```", "",
             f"## Validation ({entry['val']}, {n_people} people, flip test; measured on the stored files)", "",
             "| mode | " + " | ".join(HEADLINE) + " |", "|---|" + "---|" * len(HEADLINE)]
    m = entry["metrics"]
    for mode, label in (("none", "base alone"), ("correct", "correction"), ("tta", "correction + test-time training")):
        values = [m.get(PREFIX[mode] + k) for k in HEADLINE]
        lines.append(f"| {label} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in values) + " |")
    if entry.get("notes"):
        lines += ["", "## Notes", "", entry["notes"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Publish SCAI nets as a zoo entry of a base pose model")
    p.add_argument("checkpoint", help="a SCAI checkpoint (train_scai)")
    p.add_argument("--name", required=True)
    p.add_argument("--base", required=True, help="the zoo entry of the pose model the nets belong to")
    p.add_argument("--val", required=True)
    p.add_argument("--command", required=True, help="the command that trained the nets")
    p.add_argument("--budget", required=True)
    p.add_argument("--notes", default="")
    p.add_argument("--notes-file", help="read the notes from this file")
    p.add_argument("--zoo-dir", default="zoo")
    p.add_argument("--limit", type=int, help="measure on the first N people of --val only")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    notes = Path(args.notes_file).read_text().strip() if args.notes_file else args.notes
    entry = publish_scai(args.checkpoint, args.name, base=args.base, val=args.val, command=args.command,
                         budget=args.budget, zoo_dir=args.zoo_dir, notes=notes, limit=args.limit)
    print(json.dumps(entry["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
