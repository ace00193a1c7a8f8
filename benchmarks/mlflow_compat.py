"""MLflow's own REST tracking tests against our endpoint: a compatibility harness, the way mlflow-go proves its
server.

MLflow's ``tests/tracking/test_rest_tracking.py`` (of the MLflow release below; never copied into this
repository) runs unmodified in the MLflow venv (``benchmarks/.mlflow-venv``, shared with mlflow_bench:
``mlflow==3.17.2`` + pytest), with its ``mlflow_client`` fixture pointed at a running server by the pytest
plugin ``benchmarks/mlflow_compat_plugin.py`` (see there: every test starts on an emptied store; the
``store_type="file"`` variant is deselected):

- ``--target ours`` (default): a real ``airflow api-server`` on a fresh AIRFLOW_HOME (simple auth manager,
  token from ``POST /auth/token``), tracking store on a throwaway PostgreSQL (``--backend sqlite``: SQLite),
  URL ``http://127.0.0.1:<port>/mltrack/mlflow`` with ``MLFLOW_TRACKING_TOKEN``;
- ``--target mlflow``: a real ``mlflow server --serve-artifacts`` (SQLite) from the venv, through the same
  override: the baseline, which shows what fails for reasons of the harness or of version skew.

MLflow's test sources: ``--mlflow-tests DIR``, a checkout of github.com/mlflow/mlflow at tag
``v<--mlflow-version>`` (``git clone --depth 1 --branch v3.17.2 https://github.com/mlflow/mlflow``); without
it the harness tries the PyPI sdist (``pip download --no-binary :all: mlflow==<version>``), which so far
carries no ``tests/``, and says so. ``DIR/SOURCE.json``, when present, records where a copy came from.

Prints passed/failed/skipped/errors of the whole file and of ``SELECTION`` (the tests, by name, that
exercise what our endpoint serves: experiments, runs, logging, metric history, inputs, logged models and
outputs, artifacts through the proxy, MLflow-shaped errors; aim: >= 90% pass), every failure of the
selection with a one-line reason, and the remaining failure classes of the whole file (``CLASSES``: tracing,
registry, ... and why). Writes benchmarks/results/mlflow_compat.json. One run takes ~3-6 min (the first one
plus the venv); keep one at a time (2 shared cores).

Usage: python -m benchmarks.mlflow_compat [--target ours|mlflow] [--backend postgres|sqlite]
       [--mlflow-tests DIR] [--mlflow-version 3.17.2] [--selection-only] [--timeout 120] [--venv DIR]
       [--json benchmarks/results/mlflow_compat.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.markup import escape

from airflow_mltrack.store.migrations import VERSION_TABLE, upgrade
from benchmarks._common import ROOT, arguments, machine_info, migrated_database, print_table, temp_postgres
from benchmarks._common import write_results as write_json
from benchmarks.mlflow_bench import MLFLOW_VERSION, VENV, code_version, ensure_mlflow_venv
from tests.support.airflow_cluster import AirflowCluster
from tests.support.pgserver import free_port

TEST_FILE = "tests/tracking/test_rest_tracking.py"
PLUGIN = "mlflow_compat_plugin"  # benchmarks/mlflow_compat_plugin.py, on the venv's PYTHONPATH
TEST_REQUIREMENTS = ("pytest==9.2.0", "pytest-timeout==2.4.0", "pytest-asyncio==1.5.0")
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")

# The tests (function names; every parametrization counts) that exercise what our endpoint serves.
SELECTION: dict[str, tuple[str, ...]] = {
    "experiments": (
        "test_create_get_search_experiment",
        "test_create_experiment_validation",
        "test_get_experiment_by_name",
        "test_get_experiment",
        "test_search_experiments",
        "test_delete_restore_experiment",
    ),
    "runs": (
        "test_create_run_all_args",
        "test_create_run_defaults",
        "test_set_terminated_defaults",
        "test_set_terminated_status",
        "test_update_run_name_without_changing_status",
        "test_search_pagination",
        "test_search_validation",
    ),
    "logging": (
        "test_log_metrics_params_tags",
        "test_log_metric_validation",
        "test_log_param_validation",
        "test_log_param_with_empty_string_as_value",
        "test_set_tag_with_empty_string_as_value",
        "test_log_batch_containing_params_and_tags_with_empty_string_values",
        "test_set_tag_validation",
        "test_delete_tag",
        "test_log_batch",
        "test_log_batch_validation",
    ),
    "metric history": (
        "test_get_metric_history_respects_max_results",
        "test_get_metric_history_with_page_token",
        "test_get_metric_history_bulk_interval_rejects_invalid_requests",
        "test_get_metric_history_bulk_interval_respects_max_results",
    ),
    "inputs": ("test_log_inputs", "test_log_inputs_validation", "test_log_input", "test_log_inputs_model"),
    "logged models, outputs": (
        "test_create_logged_model",
        "test_finalize_logged_model",
        "test_search_logged_models",
        "test_log_outputs",
        "test_log_metric_model",
    ),
    "artifacts (mlflow-artifacts proxy)": (
        "test_list_logged_model_artifacts",
        "test_get_logged_model_artifact",
    ),
}
SELECTED = {name: group for group, names in SELECTION.items() for name in names}

# Failure classes of the whole file, by test name (first match wins), and why they fail against us.
CLASSES: tuple[tuple[str, str, str], ...] = (
    (
        "tracing",
        r"trace|span|assessment|otel",
        "traces/spans/assessments: not a tracking-store concept of ours",
    ),
    (
        "model registry",
        r"model_version|registered_model|prompt|webhook|validation_regex",
        "registered models, versions, prompts, webhooks: no model registry is served",
    ),
    (
        "GenAI datasets, scorers, issues",
        r"evaluation_dataset|dataset_to_experiments|dataset_from_experiments|add_multiple_experiments"
        r"|dataset_experiment_association|idempotent_(add|remove)|add_remove_experiments|scorer|scoring|issue",
        "MLflow 3 GenAI entities (evaluation datasets, scorers, issues): not served",
    ),
    (
        "AI gateway, secrets",
        r"secret|endpoint|provider|model_definition|gateway|list_models",
        "MLflow's AI gateway configuration store: not served",
    ),
    ("GraphQL", r"graphql", "MLflow UI's GraphQL endpoint: not served"),
    (
        "UI-only ajax handlers",
        r"promptlab|upload_artifact|search_dataset|metric_history_bulk(?!_interval)",
        "handlers of MLflow's own web UI (ajax-api), not of the client",
    ),
    ("CLI", r"_cli$", "the mlflow CLI against the server"),
    (
        "logged models",
        r"logged_model|log_outputs|log_model|metric_model|inputs_model",
        "logged-model calls beyond create/get/finalize/search",
    ),
    ("artifacts", r"artifact", "artifact routes beyond the mlflow-artifacts proxy"),
    ("experiments", r"experiment", "experiment calls"),
    ("runs and logging", r".", "other tracking calls"),
)


def classify(name: str) -> str:
    """The failure class of test function ``name`` (``CLASSES``)."""
    return next(label for label, pattern, _ in CLASSES if re.search(pattern, name))


def function_name(nodeid: str) -> str:
    """``path::test_x[param]`` -> ``test_x``."""
    return nodeid.split("::")[-1].split("[")[0]


# ---------------------------------------------------------------------------------------- the MLflow side


def ensure_test_venv(venv: Path, console: Console) -> Path:
    """mlflow_bench's MLflow venv (created on first use) with ``TEST_REQUIREMENTS`` added; its python."""
    python = ensure_mlflow_venv(venv, console)
    probe = [str(python), "-c", "import pytest, pytest_asyncio, pytest_timeout"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        console.print(f"adding {' '.join(TEST_REQUIREMENTS)} to {venv} ...")
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *TEST_REQUIREMENTS,
            ],
            check=True,
        )
    return python


def tests_from_sdist(python: Path, version: str, cache: Path, console: Console) -> Path | None:
    """The sdist ``mlflow-<version>.tar.gz`` unpacked under ``cache`` if it carries ``TEST_FILE``, else None
    (the answer is remembered: a marker file instead of a second download)."""
    marker = cache / f"mlflow-{version}.no-tests"
    root = cache / f"mlflow-{version}"
    if (root / TEST_FILE).is_file():
        return root
    if marker.exists():
        return None
    cache.mkdir(parents=True, exist_ok=True)
    console.print(f"trying the sdist of mlflow=={version} for {TEST_FILE} ...")
    with tempfile.TemporaryDirectory() as tmp:
        found = subprocess.run(
            [str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
            + ["--disable-pip-version-check", "-d", tmp, f"mlflow=={version}"],
            capture_output=True,
            text=True,
            check=False,
        )
        archives = list(Path(tmp).glob("mlflow-*.tar.gz"))
        if found.returncode != 0 or not archives:
            console.print(f"[yellow]no sdist of mlflow=={version}: {found.stderr.strip()[-300:]}")
            return None
        with tarfile.open(archives[0]) as tar:
            prefix = f"mlflow-{version}/tests/"
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            if not any(m.name == f"mlflow-{version}/{TEST_FILE}" for m in members):
                marker.write_text(f"{archives[0].name} has no {TEST_FILE}\n")
                return None
            tar.extractall(cache, members=members, filter="data")
    return root


def test_sources(args: Any, python: Path, console: Console) -> tuple[Path, dict[str, Any]]:
    """The directory holding ``TEST_FILE`` and a record of where it came from; exits with a message naming
    ``--mlflow-tests`` when there is none."""
    root = args.mlflow_tests or tests_from_sdist(python, args.mlflow_version, args.venv / "sdist", console)
    if root is None:
        raise SystemExit(
            f"the sdist of mlflow=={args.mlflow_version} carries no {TEST_FILE}: pass --mlflow-tests DIR, a "
            f"checkout of MLflow at tag v{args.mlflow_version} (git clone --depth 1 --branch "
            f"v{args.mlflow_version} https://github.com/mlflow/mlflow DIR)"
        )
    source: dict[str, Any] = {"dir": str(root), "sha256": _sha256(root / TEST_FILE)}
    if (root / "SOURCE.json").is_file():
        source.update(json.loads((root / "SOURCE.json").read_text()))
    elif (root / ".git").exists():
        git = subprocess.run(
            ["git", "-C", str(root), "describe", "--tags", "--always"], capture_output=True, text=True
        )
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        source.update(commit=head.stdout.strip(), describe=git.stdout.strip())
    else:
        source["origin"] = f"sdist mlflow-{args.mlflow_version}.tar.gz"
    return root, source


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validate_tests_dir(value: str) -> Path:
    """argparse type of ``--mlflow-tests``: a directory holding ``TEST_FILE``."""
    path = Path(value).expanduser().resolve()
    if not (path / TEST_FILE).is_file():
        raise argparse.ArgumentTypeError(f"{value!r} holds no {TEST_FILE}")
    return path


# ---------------------------------------------------------------------------------------- the servers


def _log_tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _wait(url: str, deadline: float, process: subprocess.Popen[Any], log: Path, what: str) -> None:
    """Poll ``url`` until it answers 200; fail with ``log``'s tail if ``process`` dies or time runs out."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}):\n{_log_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{what} did not answer {url} in time:\n{_log_tail(log)}")


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> Iterator[subprocess.Popen[Any]]:
    """``argv`` running in ``cwd`` with its output in ``log``; terminated (killed after 20 s) on leaving."""
    out: IO[str] = log.open("w")
    process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()


@contextmanager
def ours(tmp: Path, backend: str, console: Console) -> Iterator[dict[str, Any]]:
    """A real ``airflow api-server`` (one worker) on a fresh AIRFLOW_HOME and a fresh tracking store."""
    with ExitStack() as stack:
        if backend == "postgres":
            pg = stack.enter_context(temp_postgres())
            url = migrated_database(pg, "mlflow_compat")
            info = machine_info(pg)
        else:
            url = f"sqlite:///{tmp / 'tracking.db'}"
            upgrade(url)
            info = machine_info()
        (tmp / "dags").mkdir()
        cluster = AirflowCluster(
            tmp,
            tmp / "dags",
            url,
            secret=secrets.token_urlsafe(24),  # JWT signing key of this throwaway server
            extra_env={
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__MLTRACK__ARTIFACT_ROOT": f"file://{tmp / 'artifacts'}",
            },
        )
        console.print(f"airflow db migrate ({backend} tracking store) ...")
        migrate = cluster.airflow("db", "migrate", timeout=600)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
        log = tmp / "api-server.log"
        process = stack.enter_context(
            _process([sys.executable, "-m", "airflow", "api-server"], cluster.env, log, tmp / "work")
        )
        base = f"http://127.0.0.1:{cluster.port}"
        _wait(f"{base}/api/v2/monitor/health", time.monotonic() + 300, process, log, "airflow api-server")
        passwords = json.loads((cluster.home / "simple_auth_manager_passwords.json.generated").read_text())
        answer = httpx.post(
            f"{base}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30
        )
        answer.raise_for_status()
        yield {
            "url": f"{base}/mltrack/mlflow",
            "token": answer.json()["access_token"],
            "reset": {"kind": "truncate", "url": url, "keep": [VERSION_TABLE]},
            "log": log,
            "machine": info,
            "server": f"airflow api-server, tracking store on {backend}",
        }


@contextmanager
def mlflow_server(tmp: Path, python: Path, console: Console) -> Iterator[dict[str, Any]]:
    """A real ``mlflow server --serve-artifacts`` (SQLite) from the MLflow venv."""
    db = f"sqlite:///{tmp / 'mlflow.db'}"
    port = free_port()
    log = tmp / "mlflow-server.log"
    argv = [str(python), "-m", "mlflow", "server", "--backend-store-uri", db, "--serve-artifacts"]
    argv += ["--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1"]
    console.print("mlflow server (SQLite) ...")
    with _process(argv, _venv_env(), log, tmp / "work") as process:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/health", time.monotonic() + 180, process, log, "mlflow server")
        yield {
            "url": base,
            "token": "",
            "reset": {"kind": "mlflow", "url": db, "artifact_root": "mlflow-artifacts:/"},
            "log": log,
            "machine": machine_info(),
            "server": "mlflow server --serve-artifacts, SQLite",
        }


def _venv_env() -> dict[str, str]:
    """Our environment without Airflow's, Python's and MLflow's settings; MLflow's telemetry off."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV", "MLFLOW"))
    }
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    return env


# ---------------------------------------------------------------------------------------- the run


def run_tests(
    python: Path,
    root: Path,
    server: dict[str, Any],
    tmp: Path,
    only: list[str] | None,
    timeout: int,
    name: str,
) -> tuple[dict[str, Any], int]:
    """pytest on ``TEST_FILE`` (only the tests named ``only``; with ``timeout`` 0 only collected) in the MLflow
    venv with the plugin, in ``tmp/work``: the plugin's report and pytest's exit code (log: ``tmp/<name>.log``)."""
    ini = tmp / "pytest.ini"
    ini.write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    report, log = tmp / f"{name}.json", tmp / f"{name}.log"
    targets = [f"{root / TEST_FILE}::{test}" for test in only] if only else [str(root / TEST_FILE)]
    argv = [str(python), "-m", "pytest", *targets, "-p", "no:cacheprovider", "--noconftest", "-p", PLUGIN]
    argv += ["-c", str(ini), "--rootdir", str(root), "--basetemp", str(tmp / f"{name}-tmp"), "-q", "-rN"]
    argv += ["--timeout", str(timeout)] if timeout else ["--collect-only"]
    env = _venv_env()
    env.update(
        PYTHONPATH=str(ROOT / "benchmarks"),
        MLFLOW_COMPAT_URL=server["url"],
        MLFLOW_COMPAT_RESET=json.dumps(server["reset"]),
        MLFLOW_COMPAT_REPORT=str(report),
    )
    if server["token"]:
        env["MLFLOW_TRACKING_TOKEN"] = server["token"]
    with log.open("w") as out:
        code = subprocess.run(
            argv, cwd=tmp / "work", env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    if not report.exists():
        raise RuntimeError(f"pytest wrote no report (exit {code}):\n{_log_tail(log)}")
    return json.loads(report.read_text()), code


def summarize(tests: dict[str, dict[str, Any]], collection: dict[str, int]) -> dict[str, Any]:
    """Counts of what ran (the whole file or the selection) and of the selection, the selection's failures,
    the file's failure classes; ``collection``: the plugin's counts of the whole file."""
    whole = Counter(t["outcome"] for t in tests.values())
    chosen = {nodeid: t for nodeid, t in tests.items() if function_name(nodeid) in SELECTED}
    picked = Counter(t["outcome"] for t in chosen.values())
    ran = sum(picked[o] for o in ("passed", "failed", "error"))
    failures = [
        {
            "test": nodeid.split("::")[-1],
            "group": SELECTED[function_name(nodeid)],
            "outcome": t["outcome"],
            "reason": t["reason"],
        }
        for nodeid, t in chosen.items()
        if t["outcome"] in ("failed", "error")
    ]
    classes: dict[str, dict[str, Any]] = {}
    for nodeid, t in tests.items():
        if t["outcome"] in ("failed", "error") and nodeid not in chosen:
            label = classify(function_name(nodeid))
            entry = classes.setdefault(label, {"count": 0, "why": _why(label), "tests": []})
            entry["count"] += 1
            entry["tests"].append({"test": nodeid.split("::")[-1], "reason": t["reason"]})
    present = {function_name(n) for n in tests}
    return {
        "ran": {o: whole.get(o, 0) for o in OUTCOMES} | {"total": len(tests)},
        "whole_file": collection,
        "selection": {o: picked.get(o, 0) for o in OUTCOMES}
        | {
            "total": len(chosen),
            "pass_rate": round(picked["passed"] / ran, 4) if ran else None,
            "missing_from_file": sorted(set(SELECTED) - present),
        },
        "selection_failures": failures,
        "failure_classes": dict(sorted(classes.items(), key=lambda kv: -kv[1]["count"])),
    }


def _why(label: str) -> str:
    return next(why for name, _, why in CLASSES if name == label)


def print_summary(summary: dict[str, Any], console: Console, target: str, selection_only: bool) -> None:
    ran, sel, whole = summary["ran"], summary["selection"], summary["whole_file"]
    rows = [("selection", *(str(sel[o]) for o in OUTCOMES), str(sel["total"]))]
    if not selection_only:
        rows.append((f"whole {TEST_FILE}", *(str(ran[o]) for o in OUTCOMES), str(ran["total"])))
    print_table(
        console, f"MLflow's REST tracking tests against {target}", ("tests", *OUTCOMES, "total"), rows
    )
    console.print(
        f"whole file: {whole['collected']} tests collected, {whole['deselected']} deselected "
        f"(store_type=file), {whole['selected']} for this server"
        + (" (only the selection ran)" if selection_only else "")
    )
    rate = sel["pass_rate"]
    console.print(
        f"selection pass rate: {rate:.1%} (aim >= 90%)" if rate is not None else "selection: none ran"
    )
    if sel["missing_from_file"]:
        console.print(f"[yellow]selected tests absent from this file: {', '.join(sel['missing_from_file'])}")
    if summary["selection_failures"]:
        print_table(
            console,
            "Selection failures",
            ("group", "test", "reason"),
            [(f["group"], escape(f["test"]), escape(f["reason"])) for f in summary["selection_failures"]],
            left=("test", "reason"),
        )
    classes = summary["failure_classes"]
    if classes:
        print_table(
            console,
            "Failures outside the selection, by class",
            ("class", "failed", "why", "e.g."),
            [
                (k, str(v["count"]), v["why"], escape(v["tests"][0]["reason"][:90]))
                for k, v in classes.items()
            ],
            left=("why", "e.g."),
        )


def main() -> int:
    parser = arguments(__doc__, "mlflow_compat")
    parser.add_argument("--target", choices=("ours", "mlflow"), default="ours", help="the server under test")
    parser.add_argument(
        "--backend", choices=("postgres", "sqlite"), default="postgres", help="our tracking store"
    )
    parser.add_argument(
        "--mlflow-tests", type=validate_tests_dir, default=None, help=f"a checkout holding {TEST_FILE}"
    )
    parser.add_argument("--mlflow-version", default=MLFLOW_VERSION, help="the MLflow release of the tests")
    parser.add_argument(
        "--selection-only", action="store_true", help="run only SELECTION, not the whole file"
    )
    parser.add_argument("--timeout", type=int, default=120, help="seconds per test (pytest-timeout)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, report)")
    parser.add_argument("--venv", type=Path, default=VENV)
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 150)
    started = time.perf_counter()
    python = ensure_test_venv(args.venv, console)
    root, source = test_sources(args, python, console)
    versions = subprocess.run(
        [str(python), "-c", "import mlflow, pytest; print(mlflow.__version__, pytest.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tmp = Path(tempfile.mkdtemp(prefix="mlflow-compat-"))
    (tmp / "work").mkdir()
    target = (
        ours(tmp, args.backend, console) if args.target == "ours" else mlflow_server(tmp, python, console)
    )
    try:
        with target as server:
            only = sorted(SELECTED) if args.selection_only else None
            console.print(f"running {TEST_FILE} against {server['url']} (log: {tmp / 'pytest.log'}) ...")
            report, code = run_tests(python, root, server, tmp, only, args.timeout, "pytest")
            collected = run_tests(python, root, server, tmp, None, 0, "collect")[0] if only else report
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if not report["tests"]:
        console.print(f"[red]pytest ran nothing (exit {code})")
        return 1
    summary = summarize(report["tests"], collected["collection"])
    print_summary(summary, console, server["server"], args.selection_only)
    total = time.perf_counter() - started
    console.print(f"total {total:.0f}s; pytest exit {code}" + (f"; kept {tmp}" if args.keep else ""))
    write_json(
        args.json,
        {
            "target": args.target,
            "server": server["server"],
            "backend": args.backend if args.target == "ours" else "sqlite",
            "machine": server["machine"],
            "code": code_version(),
            "mlflow_venv": {
                "mlflow": versions[0],
                "pytest": versions[1],
                "test_requirements": TEST_REQUIREMENTS,
            },
            "tests_source": source | {"file": TEST_FILE, "requested_version": args.mlflow_version},
            "selection_only": args.selection_only,
            "selection": SELECTION,
            "collection": collected["collection"],
            "pytest_exit": code,
            "seconds": round(total, 1),
            **summary,
            "tests": report["tests"],
        },
        console,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
