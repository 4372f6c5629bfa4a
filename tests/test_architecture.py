"""The import rules of docs/architecture.md, checked on the source of every module under raylab/.

Ray is imported only in modules named `ray_*.py`, MLflow only in `runtime/tracking.py` (and
`mlflow_*.py` modules), `ray.init` is called only by `runtime/ray_session.py`, `analysis` is never
imported, and each stage package imports only the packages below it (`LAYERS`).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "raylab"
# Each package may import itself, the root modules (raylab/__init__, errors, limits) and the
# packages listed; report/layout (names only, imports nothing of raylab) is open to all.
LAYERS = {
    "runtime": set(),
    "models": set(),
    "data": {"runtime", "models"},
    "report": {"runtime"},
    "train": {"runtime", "models", "data", "report"},
    "search": {"runtime", "models", "data", "report", "train"},
    "crossval": {"runtime", "models", "data", "report", "train"},
    "predict": {"runtime", "models", "data", "report", "train"},
    "cli": {"runtime", "models", "data", "report", "train", "search", "crossval", "predict"},
}
ROOT_MODULES = {"raylab", "raylab.errors", "raylab.limits"}
OPEN_TO_ALL = {"raylab.report.layout"}
# Modules allowed one import across the layers, and why.
EXCEPTIONS = {
    "raylab.runtime.doctor": {"data"},      # `raylab doctor` checks the datasets it finds
    "raylab.models.flops": {"train"},       # the cost of a training trial reads its parameters
    # a trained network is logged as an MLflow model where it is trained (lazy imports: the
    # pyfunc model wraps predict's runner, which itself runs the networks through train)
    "raylab.train.fold": {"predict"},
    "raylab.crossval.driver": {"predict"},
    "raylab.crossval.ray_train": {"predict"},
}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (lazy imports count too)."""
    found = []
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if node.module == "raylab"]
    return found


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def leaf_violations(path: Path, source: str | None = None) -> list[str]:
    wrong = []
    for line, module in imports(path, source):
        top = module.split(".")[0]
        if top == "ray" and not path.name.startswith("ray_"):
            wrong.append(f"{where(path, line)} imports {module}: Ray belongs in a ray_*.py module")
        if top == "mlflow" and not (path.name.startswith("mlflow_")
                                    or path == PACKAGE / "runtime" / "tracking.py"):
            wrong.append(f"{where(path, line)} imports {module}: MLflow belongs in "
                         "runtime/tracking.py or a mlflow_*.py module")
    return wrong


def test_ray_and_mlflow_only_in_their_leaves():
    wrong = [line for path in modules() for line in leaf_violations(path)]
    assert not wrong, "\n".join(wrong)


def test_only_the_ray_session_starts_ray():
    wrong = []
    for path in modules():
        if path == PACKAGE / "runtime" / "ray_session.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "init" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "ray"):
                wrong.append(f"{where(path, node.lineno)} calls ray.init: enter "
                             "raylab.runtime.ray_session.ray_session instead")
    assert not wrong, "\n".join(wrong)


def test_raylab_never_imports_analysis():
    wrong = [f"{where(path, line)} imports {module}: analysis imports raylab, never the reverse"
             for path in modules() for line, module in imports(path)
             if module.split(".")[0] == "analysis"]
    assert not wrong, "\n".join(wrong)


def layer_violations(path: Path, source: str | None = None) -> list[str]:
    wrong = []
    name = dotted(path)
    parts = name.split(".")
    if len(parts) < 2 or name in ROOT_MODULES or name == "raylab.__main__":
        own = None  # a root module: it may import only other root modules
    else:
        own = parts[1]
    allowed = LAYERS.get(own, set()) | EXCEPTIONS.get(name, set()) | ({own} if own else set())
    for line, module in imports(path, source):
        if not module.startswith("raylab.") or module in ROOT_MODULES or module in OPEN_TO_ALL:
            continue
        if name == "raylab.__main__" and module.startswith("raylab.cli"):
            continue
        target = module.split(".")[1]
        if target not in LAYERS:  # a root module's name imported from `raylab`
            continue
        if target not in allowed:
            wrong.append(f"{where(path, line)} imports {module}: {own or 'a root module'} may "
                         f"import only {', '.join(sorted(allowed)) or 'the root modules'}")
    return wrong


def test_stage_packages_import_only_the_layers_below():
    wrong = [line for path in modules() for line in layer_violations(path)]
    assert not wrong, "\n".join(wrong)


def test_a_violation_names_the_file_and_the_import():
    bad = PACKAGE / "train" / "example.py"
    assert leaf_violations(bad, "def f():\n    import ray.tune\n") == [
        "raylab/train/example.py:2 imports ray.tune: Ray belongs in a ray_*.py module"]
    assert layer_violations(bad, "from raylab.search.space import SearchSpace\n") == [
        "raylab/train/example.py:1 imports raylab.search.space: train may import only data, "
        "models, report, runtime, train"]
