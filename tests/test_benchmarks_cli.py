"""The benchmarks as a user runs them: ``python -m benchmarks.<name>`` from the repository root.

Every benchmark module answers ``--help`` with its own flags and its ``python -m`` command line, none of
them edits ``sys.path``, and the cheapest one (task_bench, a few tasks on a throwaway PostgreSQL and on
SQLite) runs end to end and writes the JSON it promises.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each benchmark and the flags its --help must show.
FLAGS: dict[str, tuple[str, ...]] = {
    "ingest_bench": ("--rows", "--rounds", "--batch-rows", "--json"),
    "task_bench": ("--tasks", "--json"),
    "pgbouncer_bench": ("--tasks", "--points", "--pool-size", "--json"),
    "celery_bench": (
        "--tasks",
        "--points",
        "--concurrency",
        "--pause",
        "--no-kill",
        "--pgbouncer",
        "--pool-size",
        "--json",
    ),
    "backfill_bench": ("--days", "--metrics", "--skip-postgres", "--json"),
    "ui_bench": ("--experiments", "--metrics", "--repeat", "--explain", "--growth", "--json"),
    "partition_bench": (
        "--experiments",
        "--metrics",
        "--quick",
        "--ingest-rows",
        "--batched-rows",
        "--writers",
        "--writer-rows",
        "--rounds",
        "--json",
    ),
    "mlflow_bench": (
        "--rows",
        "--runs",
        "--metric-rows",
        "--grow-from",
        "--repeat",
        "--quick",
        "--venv",
        "--json",
    ),
    # not a *_bench: MLflow's own REST tests against our endpoint (benchmarks/mlflow_compat.py)
    "mlflow_compat": (
        "--target",
        "--backend",
        "--mlflow-tests",
        "--mlflow-version",
        "--selection-only",
        "--timeout",
        "--venv",
        "--json",
    ),
    "mlflow_rest_bench": (
        "--runs",
        "--clients",
        "--seconds",
        "--rounds",
        "--repeat",
        "--workers",
        "--quick",
        "--mlflow-both",
        "--venv",
        "--json",
    ),
}


def _env() -> dict[str, str]:
    """The caller's environment without the session's Python path tweaks: ``-m`` must find the packages
    from the working directory alone."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def helps() -> dict[str, subprocess.CompletedProcess[str]]:
    """``python -m benchmarks.<name> --help`` of every benchmark, started together (imports are slow)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"benchmarks.{name}", "--help"],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in FLAGS
    }
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_help_shows_module_command_and_flags(
    helps: dict[str, subprocess.CompletedProcess[str]], name: str
) -> None:
    result = helps[name]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m benchmarks.{name} "), result.stdout[:200]
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", result.stdout))
    missing = [flag for flag in FLAGS[name] if flag not in options]
    assert not missing, result.stdout
    assert f"benchmarks/results/{name.removesuffix('_bench')}.json" in result.stdout


def test_benchmarks_are_a_package_without_path_hacks() -> None:
    """A package (so ``-m`` imports it, and ``tests``, from the root), every benchmark covered above, and no
    module reaching into ``sys.path`` to import its siblings or the test support."""
    folder = ROOT / "benchmarks"
    assert (folder / "__init__.py").is_file()
    assert {p.stem for p in folder.glob("*_bench.py")} | {"mlflow_compat"} == set(FLAGS)
    offenders = [
        p.name for p in sorted(folder.glob("*.py")) if re.search(r"sys\.path\.(insert|append)", p.read_text())
    ]
    assert offenders == []


def test_task_bench_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "task.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.task_bench", "--tasks", "3", "--json", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"wrote {out}" in result.stdout.replace("\n", "")
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["tasks"] == 3
    assert data["machine"]["cpus"] > 0 and data["machine"]["python"]
    assert set(data["results"]) == {"PostgreSQL", "SQLite"}
    sites = {"create experiment", "log 50 metrics", "listener: find the task's experiments", "status move"}
    for backend, entries in data["results"].items():
        assert set(entries) == sites | {"whole task"}, backend
        for site, entry in entries.items():
            assert entry["median_ms"] > 0, (backend, site)
            assert entry["statements"] >= 1, (backend, site)
        whole = entries["whole task"]
        assert whole["p95_ms"] >= whole["median_ms"] > 0
        assert whole["statements"] == sum(entries[s]["statements"] for s in sites)
    # The server's own log counts the round trips: at least one per statement sent.
    if "postgresql_parent_dir" in data["machine"] and data["machine"]["postgresql_parent_dir"]:
        for site, entry in data["results"]["PostgreSQL"].items():
            assert entry["round_trips"] >= entry["statements"], site


def test_mlflow_compat_refuses_a_tests_dir_without_the_test_file(tmp_path: Path) -> None:
    """A wrong ``--mlflow-tests`` is named with its value before anything is installed or started."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.mlflow_compat", "--mlflow-tests", str(tmp_path)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert (
        f"argument --mlflow-tests: '{tmp_path}' holds no tests/tracking/test_rest_tracking.py"
        in result.stderr
    )


def test_mlflow_compat_summary_counts_the_selection_apart() -> None:
    """The selection's pass rate counts only selected tests that ran; other failures go to their class."""
    from benchmarks.mlflow_compat import summarize

    path = "tests/tracking/test_rest_tracking.py::"
    tests = {
        path + "test_log_batch[sqlalchemy]": {"outcome": "passed", "reason": ""},
        path + "test_create_run_all_args[sqlalchemy-None]": {"outcome": "failed", "reason": "456 != now"},
        path + "test_get_experiment[sqlalchemy]": {"outcome": "passed", "reason": ""},
        path + "test_start_trace[sqlalchemy]": {"outcome": "failed", "reason": "501 NOT_IMPLEMENTED"},
        path + "test_graphql_handler[sqlalchemy]": {"outcome": "error", "reason": "setup: boom"},
        path + "test_log_model[sqlalchemy]": {"outcome": "xfailed", "reason": "not yet"},
    }
    summary = summarize(tests, {"collected": 12, "selected": 6, "deselected": 6})
    assert summary["selection"]["total"] == 3
    assert (summary["selection"]["passed"], summary["selection"]["failed"]) == (2, 1)
    assert summary["selection"]["pass_rate"] == round(2 / 3, 4)
    assert summary["ran"]["total"] == 6 and summary["ran"]["xfailed"] == 1
    assert [f["test"] for f in summary["selection_failures"]] == ["test_create_run_all_args[sqlalchemy-None]"]
    assert summary["selection_failures"][0]["group"] == "runs"
    assert {k: v["count"] for k, v in summary["failure_classes"].items()} == {"tracing": 1, "GraphQL": 1}
    assert summary["whole_file"]["collected"] == 12
