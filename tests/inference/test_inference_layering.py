"""Inference sits below the engine: loading and running a checkpoint never imports posekit.engine."""
import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_inference_sources_never_name_the_engine():
    for path in (REPO_ROOT / "posekit" / "inference").glob("*.py"):
        assert "posekit.engine" not in path.read_text(), path


def test_importing_inference_and_checkpoint_loads_no_engine_module():
    code = ("import sys, posekit.inference.predictor, posekit.inference.export, posekit.checkpoint; "
            "print(sorted(m for m in sys.modules if m.startswith('posekit.engine')))")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
