"""Round two of the bad-input attacks (issue #18): run every attack of ``reliability_attack_files.py`` /
``reliability_attack_runs.py`` and count how each ended.

    PYTHONPATH=. python benchmarks/reliability.py --round-two      (or: python benchmarks/reliability_attacks.py)

Outcomes: **clear** (refused with exit 2 and one line on stderr that names the file and, for a bad record, the
record; or, where the right answer is to go on, went on and said what it set aside), **traceback** (an
exception escaped the command line), **unclear** (refused, but the message does not name what it must), and
**silently wrong** (exit 0 with a wrong result, a file or log changed that must not be, unbounded memory).
Writes ``benchmarks/results/reliability_round_two.json`` and prints a markdown table.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from common import environment, table, write_results
from reliability_attack_files import Attack, build_workspace
from reliability_attack_runs import all_attacks

RESULTS = Path(__file__).resolve().parent / "results" / "reliability_round_two.json"
OUTCOMES = ("clear", "traceback", "unclear", "silently wrong")


@dataclass
class Outcome:
    code: int | None = None
    stderr: str = ""
    logs: str = ""
    error: str | None = None       # the traceback of an exception that escaped
    growth_mb: float | None = None  # memory probes: peak-RSS growth


@contextlib.contextmanager
def captured_warnings():
    """The WARNING+ messages of the ``posekit`` loggers while the block runs, as one text."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.WARNING)
    logging.getLogger("posekit").addHandler(handler)
    try:
        yield buffer
    finally:
        logging.getLogger("posekit").removeHandler(handler)


def run_command(attack: Attack) -> Outcome:
    """``posekit ARGV`` in this process (stderr and warnings captured); an escaping exception is recorded."""
    from posekit.cli import main
    outcome, stderr = Outcome(), io.StringIO()
    patch = attack.patch() if attack.patch else contextlib.nullcontext()
    with captured_warnings() as logs, patch, contextlib.redirect_stderr(stderr), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            outcome.code = main(attack.argv)
        except SystemExit as exit_:  # argparse
            outcome.code = exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # noqa: BLE001 -- exactly what this benchmark counts
            outcome.error = traceback.format_exc()
    outcome.stderr, outcome.logs = stderr.getvalue(), logs.getvalue()
    return outcome


def run_probe(attack: Attack) -> Outcome:
    """A memory attack in a fresh interpreter (its own peak RSS), one thread."""
    import posekit  # the probe runs the posekit this process imported (PYTHONPATH), not necessarily ROOT's
    env = dict(os.environ, PYTHONPATH=str(Path(posekit.__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", attack.probe], env=env, capture_output=True, text=True, timeout=600)
    outcome = Outcome(code=done.returncode, stderr=done.stderr)
    if "Traceback" in done.stderr:
        outcome.error = done.stderr
    for line in done.stdout.splitlines():
        if line.startswith("growth_mb"):
            outcome.growth_mb = float(line.split()[1])
    return outcome


def error_line(outcome: Outcome) -> str:
    lines = [line for line in outcome.stderr.splitlines() if ": error: " in line]
    return lines[-1] if len(lines) == 1 else ""


def passes_check(attack: Attack, outcome: Outcome) -> bool:
    """The attack's own check of the result (a file left unchanged, a warning given, strict JSON written);
    a check that cannot even read the result fails."""
    if attack.check is None:
        return True
    try:
        return bool(attack.check(outcome))
    except Exception:  # noqa: BLE001 -- e.g. the metrics file is not JSON
        return False


def classify(attack: Attack, outcome: Outcome) -> str:
    if outcome.error or "Traceback" in outcome.stderr:
        return "traceback"
    right = passes_check(attack, outcome)
    if attack.expect == "accept":
        if outcome.code != 0:
            return "unclear"
        return "clear" if right else "silently wrong"
    if outcome.code == 0 or not right:
        return "silently wrong"
    message = error_line(outcome)
    return "clear" if message and all(name in message for name in attack.names) else "unclear"


def run_all(root: Path, skip=()) -> list[dict]:
    workspace = build_workspace(root)
    rows = []
    for attack in all_attacks(workspace):
        if attack.kind in skip:
            continue
        start = time.perf_counter()
        outcome = run_probe(attack) if attack.probe else run_command(attack)
        verdict = classify(attack, outcome)
        escaped = (outcome.error or "").strip().splitlines()
        rows.append({"kind": attack.kind, "attack": attack.name, "outcome": verdict,
                     "message": error_line(outcome) or (escaped[-1] if escaped else None),
                     "growth_mb": outcome.growth_mb, "seconds": round(time.perf_counter() - start, 2)})
        print(f"  {verdict:15s} {attack.kind}: {attack.name}", flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    counts = {kind: Counter(r["outcome"] for r in rows if r["kind"] == kind) for kind in kinds}
    body = [[kind, sum(counts[kind].values()), *(counts[kind][o] for o in OUTCOMES)] for kind in kinds]
    total = Counter(r["outcome"] for r in rows)
    body.append(["**all**", len(rows), *(total[o] for o in OUTCOMES)])
    return "\n".join(table(["kind", "attacks", *OUTCOMES], body, align=["---", "---:", "---:", "---:", "---:", "---:"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", default="", help="comma-separated attack kinds to leave out, e.g. memory")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the json goes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(handlers=[logging.NullHandler()], level=logging.WARNING)  # warnings are captured per attack
    with tempfile.TemporaryDirectory(prefix="posekit_attacks_") as folder:
        rows = run_all(Path(folder), skip={k.strip() for k in args.skip.split(",") if k.strip()})
    for row in rows:  # the temp folder's name varies from run to run; the results should not
        if isinstance(row["message"], str):
            row["message"] = row["message"].replace(folder, "$TMP")
    result = {"rows": rows, "counts": dict(Counter(r["outcome"] for r in rows)), "table": markdown(rows),
              **environment("python", "torch", "machine")}
    write_results(result, args.results, indent=1)
    print(result["table"])
    bad = [r for r in rows if r["outcome"] != "clear"]
    for row in bad:
        print(f"- {row['outcome']}: {row['kind']}: {row['attack']}: {row['message']}")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
