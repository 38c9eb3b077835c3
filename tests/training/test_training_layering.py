"""Who may import whom: posekit.training sits below the methods and the trainer, and the trainer knows no
method. Read from the sources (import statements), so a lazy import inside a function counts too."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "posekit"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def files(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


@pytest.mark.parametrize("path", files("training"), ids=lambda p: p.name)
def test_training_imports_no_method_engine_or_cli(path):
    bad = {m for m in imported_modules(path) if m.startswith(("posekit.methods", "posekit.engine", "posekit.cli"))}
    assert not bad, bad


@pytest.mark.parametrize("path", files("engine"), ids=lambda p: p.name)
def test_the_engine_imports_no_method(path):
    assert not {m for m in imported_modules(path) if m.startswith("posekit.methods")}


def test_the_trainer_never_probes_a_method():
    source = (PACKAGE / "engine" / "trainer.py").read_text()
    tree = ast.parse(source)
    probes = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("hasattr", "getattr") and "method" in ast.unparse(node.args[0])]
    assert not probes, [ast.unparse(p) for p in probes]
