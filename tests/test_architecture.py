"""The shape of the package, as docs/architecture.md states it: layers import downward only, every layer
imports on its own without cycles, no package file over 450 lines, no private store member used outside
``store/``, every direct third-party import declared, and no citation of a file that is not in the repository.

Read from the source (AST) and from fresh interpreters; nothing here needs a database.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_mltrack"
MAX_LINES = 450

# Layer of each top-level module or subpackage of airflow_mltrack: a module may import its own layer and
# the layers below it, never one above (docs/architecture.md, "Layers").
LAYERS: dict[str, int] = {
    "": 0,  # the package root: __version__, MLTrackError, get_provider_info
    "errors": 0,
    "vocabulary": 0,
    "provider_info": 0,
    "store": 1,
    "hooks": 2,
    "sdk": 3,
    "reconcile": 3,
    "operators": 4,
    "decorators": 4,
    "listeners": 4,
    "callbacks": 4,
    "mlflow": 4,  # the MLflow tracking-store plugin (docs/mlflow.md)
    "plugins": 5,
    "cli": 5,
}
# Same layer, but neither may import the other (what they share lives in ``sdk/``).
APART = {frozenset({"operators", "decorators"})}
# The order in which a fresh interpreter imports the layers (lowest first).
IMPORT_ORDER = [
    "store",
    "hooks",
    "sdk",
    "reconcile",
    "operators",
    "decorators",
    "listeners",
    "mlflow",
    "plugins",
    "cli",
]


# -------------------------------------------------------------------------------------------- helpers


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _component(module: str) -> str | None:
    """``airflow_mltrack.store.metrics`` -> ``store``; the root -> ``""``; another package -> None."""
    parts = module.split(".")
    if parts[0] != "airflow_mltrack":
        return None
    return parts[1] if len(parts) > 1 else ""


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``path`` (top level, in functions and under TYPE_CHECKING)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from airflow_mltrack import hooks`` imports the subpackage ``hooks``.
            if target == "airflow_mltrack":
                found += [(node.lineno, f"airflow_mltrack.{alias.name}") for alias in node.names]
    return found


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


# -------------------------------------------------------------------------------------------- (a) imports


def test_every_module_is_placed_in_a_layer():
    unplaced = sorted(
        {_component(_module_name(p)) for p in _package_files()} - set(LAYERS),
        key=str,
    )
    assert not unplaced, f"add {unplaced} to LAYERS here and to docs/architecture.md"


_IMPORT_LAYER = """
import importlib, json, pkgutil, sys
name = sys.argv[1]
package = importlib.import_module(name)
modules = [name]
for info in pkgutil.walk_packages(package.__path__, name + "."):
    importlib.import_module(info.name)
    modules.append(info.name)
print(json.dumps({"modules": modules, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in
      ("airflow_mltrack", "airflow"))}))
"""


@pytest.mark.parametrize("layer", IMPORT_ORDER)
def test_layer_imports_alone_and_loads_nothing_above(layer):
    """Each layer, every module of it, in a fresh interpreter: no import cycle, no layer above loaded."""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", _IMPORT_LAYER, f"airflow_mltrack.{layer}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])["loaded"]
    above = [m for m in loaded if LAYERS.get(_component(m) or "", -1) > LAYERS[layer]]
    assert not above, f"importing {layer}/ loads modules of a layer above it: {above}"
    if layer == "store":
        airflow = [m for m in loaded if m.split(".")[0] == "airflow"]
        assert not airflow, f"store/ must run without Airflow, but importing it loads {airflow[:5]}"


def test_all_layers_import_in_order():
    code = "\n".join(f"import airflow_mltrack.{layer}" for layer in IMPORT_ORDER)
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-4000:]


# -------------------------------------------------------------------------------------------- (b) layers


def test_no_module_imports_a_layer_above_its_own():
    wrong: list[str] = []
    for path in _package_files():
        own = _component(_module_name(path))
        for line, target in _imports(path):
            other = _component(target)
            if other is None or other not in LAYERS or own not in LAYERS:
                continue
            if LAYERS[other] > LAYERS[own]:
                wrong.append(f"{_where(path, line)}: {own or 'airflow_mltrack'} imports {target}")
            elif frozenset({own, other}) in APART:
                wrong.append(f"{_where(path, line)}: {own} imports {target} (they share through sdk/)")
    assert not wrong, "\n".join(wrong)


def test_store_and_vocabulary_import_no_airflow():
    wrong = [
        f"{_where(path, line)}: imports {target}"
        for path in _package_files()
        if LAYERS.get(_component(_module_name(path)) or "", 99) <= LAYERS["store"]
        and path.name != "provider_info.py"  # metadata for Airflow, imports none of it
        for line, target in _imports(path)
        if target.split(".")[0] == "airflow"
    ]
    assert not wrong, "\n".join(wrong)


# -------------------------------------------------------------------------------------------- (c) size


def test_no_package_file_over_450_lines():
    files = [
        p
        for p in PACKAGE.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and "vendor" not in p.parts  # third-party files shipped as published (uPlot)
        and p.suffix in {".py", ".html", ".js", ".css"}
    ]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


# -------------------------------------------------------------------------------------------- (d) store API


def _names_a_store(node: ast.expr) -> bool:
    """True for ``store``, ``self.store``, ``self._store``, ``tracking_store``, ``get_store()``..."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    else:
        return False
    return name.lower().lstrip("_").endswith("store")


def test_no_private_store_member_used_outside_store():
    wrong: list[str] = []
    for path in _package_files():
        if _component(_module_name(path)) == "store":
            continue
        for node in ast.walk(_tree(path)):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and _names_a_store(node.value)
            ):
                wrong.append(f"{_where(path, node.lineno)}: {ast.unparse(node)}")
    assert not wrong, "use the store's public API:\n" + "\n".join(wrong)


# -------------------------------------------------------------------------------------------- (e) citations


def test_nothing_cites_a_design_file_outside_the_repo():
    cited = "DESIGN" + ".md"  # spelled apart so this file does not match itself
    roots = ["airflow_mltrack", "docs", "tests", "benchmarks", "dags", "scripts", "migrations"]
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for root in roots:
        files += [p for p in (ROOT / root).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    wrong: list[str] = []
    for path in files:
        if path.suffix not in {".py", ".md", ".toml", ".sh", ".html", ".js", ".ini", ".cfg", ".txt"}:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if cited in line:
                wrong.append(f"{_where(path, number)}: {line.strip()[:100]}")
    assert not wrong, "cite docs/architecture.md (or another docs/*.md) instead:\n" + "\n".join(wrong)


# -------------------------------------------------------------------------------------------- (f) dependencies


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0] for req in project["dependencies"]}
    return {re.sub(r"[-_.]+", "-", name).lower() for name in names}


def _optional_lines(path: Path) -> set[int]:
    """Lines of imports guarded by ``try: ... except ImportError`` (optional: used when installed)."""
    lines: set[int] = set()
    for node in ast.walk(_tree(path)):
        caught = [
            name.id
            for handler in getattr(node, "handlers", [])
            for name in ast.walk(handler.type or ast.Tuple(elts=[]))
            if isinstance(name, ast.Name)
        ]
        if isinstance(node, ast.Try) and {"ImportError", "ModuleNotFoundError"} & set(caught):
            lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.stmt)}
    return lines


def test_every_direct_third_party_import_is_declared():
    """``pyproject.toml`` names the distribution of every package airflow_mltrack imports directly."""
    distributions = metadata.packages_distributions()
    declared = _declared()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # airflow_mltrack/mlflow/ may also import its optional extra ``mlflow`` (docs/mlflow.md).
    extra = {
        re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]).lower()
        for r in project["optional-dependencies"]["mlflow"]
    }
    stdlib = set(sys.stdlib_module_names)
    missing: dict[str, str] = {}
    for path in _package_files():
        optional = _optional_lines(path)
        allowed = declared | extra if (PACKAGE / "mlflow") in path.parents else declared
        for line, target in _imports(path):
            top = target.split(".")[0]
            if not top or top in stdlib or top in ("airflow_mltrack", "__future__") or line in optional:
                continue
            if top == "airflow" and target.startswith("airflow.providers."):
                # a provider's own distribution: airflow.providers.postgres -> apache-airflow-providers-postgres
                dists = ["apache-airflow-providers-" + target.split(".")[2].replace("_", "-")]
            else:
                dists = distributions.get(top, [top])
            if not {re.sub(r"[-_.]+", "-", d).lower() for d in dists} & allowed:
                missing.setdefault(target, _where(path, line))
    assert not missing, f"declare in pyproject.toml [project] dependencies: {missing}"
