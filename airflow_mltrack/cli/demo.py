"""``mltrack demo``: run the example DAGs on a throwaway Airflow and show what they tracked.

On a fresh machine: an AIRFLOW_HOME of its own (``./.mltrack/airflow`` unless AIRFLOW_HOME is set, or
``--airflow-home``), Airflow's metadata in SQLite there (``airflow db migrate``), the embedded tracking
store ``$AIRFLOW_HOME/mltrack.db`` (or ``AIRFLOW_CONN_MLTRACK_DEFAULT`` if set), the package's example
DAGs as the dags folder. Runs ``airflow dags test train_evaluate_deploy`` and ``airflow dags test
failing_training`` (which is meant to fail), then prints the leaderboard, the endpoint and how to open
the UI. Running it again makes new DAG runs; datasets and models keep their ids.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from airflow_mltrack.cli import cli

MAIN_DAG = "train_evaluate_deploy"
FAILING_DAG = "failing_training"
PROJECT = "digits-demo"
ENDPOINT = "digits-classifier"
FAILING_PROJECT = "diabetes-demo"
DEFAULT_HOME = Path(".mltrack") / "airflow"
_FINISHED = re.compile(r"DagRun Finished: dag_id=(?P<dag>[^,]+),.*?\bstate=(?P<state>\w+)")


def example_dags_folder() -> Path:
    """The example DAGs: ``dags/`` of a source checkout, else ``airflow_mltrack/example_dags`` (wheel)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "dags", package / "example_dags"):
        if (candidate / f"{MAIN_DAG}.py").is_file():
            return candidate
    raise click.ClickException(
        f"cannot find the example DAGs ({MAIN_DAG}.py) in {package.parent / 'dags'} or {package / 'example_dags'}"
    )


def _airflow_env(home: Path, dags: Path) -> dict[str, str]:
    env = os.environ.copy()
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.setdefault("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False")
    # The default dags-folder bundle, in case an inherited environment configures others.
    env.pop("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", None)
    return env


def _airflow(args: list[str], env: dict[str, str], log_path: Path) -> tuple[int, str]:
    """Run ``airflow <args>`` (this Python's), output to ``log_path``; returns (exit code, output)."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    with log_path.open("a", encoding="utf-8") as handle:
        handle.write(f"$ airflow {' '.join(args)}\n{output}\n")
    return result.returncode, output


def _run_state(dag_id: str, code: int, output: str) -> str:
    states = [m.group("state") for m in _FINISHED.finditer(output) if m.group("dag").strip() == dag_id]
    if states:
        return states[-1]
    return "success" if code == 0 else "failed"


def _tail(output: str, lines: int = 25) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])


def _store(home: Path) -> Any:
    """The tracking store the DAG runs wrote to."""
    from airflow_mltrack.store import TrackingStore

    if os.environ.get("AIRFLOW_CONN_MLTRACK_DEFAULT"):
        from airflow_mltrack.hooks import MLTrackHook

        return TrackingStore.from_url(MLTrackHook.resolve_url("mltrack_default"))
    return TrackingStore.from_url(f"sqlite:///{home / 'mltrack.db'}")


@cli.command("demo")
@click.option(
    "--airflow-home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="AIRFLOW_HOME to use (default: $AIRFLOW_HOME if set, else ./.mltrack/airflow).",
)
@click.option("--skip-failing", is_flag=True, help=f"Do not run {FAILING_DAG}.")
def demo(airflow_home: Path | None, skip_failing: bool) -> None:
    """Run the example DAGs on a local Airflow and show the leaderboard and the deployment."""
    from rich.console import Console

    console = Console()
    started = time.perf_counter()
    home = (airflow_home or Path(os.environ.get("AIRFLOW_HOME") or DEFAULT_HOME)).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    dags = example_dags_folder()
    env = _airflow_env(home, dags)
    log_path = home / "mltrack-demo.log"
    console.print(f"[bold]AIRFLOW_HOME[/] {home}\n[bold]DAGs[/] {dags}\n[bold]log[/] {log_path}")

    with console.status("airflow db migrate (Airflow's metadata database)..."):
        code, output = _airflow(["db", "migrate"], env, log_path)
    if code != 0:
        console.print(_tail(output))
        raise click.ClickException(f"airflow db migrate failed (exit {code}); see {log_path}")
    console.print(f"[green]✓[/] metadata database ready ({time.perf_counter() - started:.0f}s)")

    runs = [(MAIN_DAG, "success")] + ([] if skip_failing else [(FAILING_DAG, "failed")])
    outcome: dict[str, str] = {}
    for dag_id, expected in runs:
        t0 = time.perf_counter()
        with console.status(f"airflow dags test {dag_id} ..."):
            code, output = _airflow(["dags", "test", dag_id], env, log_path)
        state = outcome[dag_id] = _run_state(dag_id, code, output)
        seconds = time.perf_counter() - t0
        if state == expected == "success":
            console.print(f"[green]✓[/] {dag_id}: success ({seconds:.0f}s)")
        elif state == expected:
            console.print(
                f"[yellow]✓[/] {dag_id}: failed, as it should ({seconds:.0f}s): a Failed experiment"
            )
        else:
            console.print(_tail(output))
            console.print(
                f"[red]✗[/] {dag_id}: {state}, expected {expected} ({seconds:.0f}s); see {log_path}"
            )

    _report(console, _store(home), skip_failing)
    console.print("\n[bold]Open the UI[/]: start Airflow on this home, e.g.")
    console.print(
        f"  AIRFLOW_HOME={home} AIRFLOW__CORE__DAGS_FOLDER={dags} airflow standalone",
        soft_wrap=True,
        highlight=False,
    )
    console.print(
        "(or `airflow api-server` with the same variables), open http://localhost:8080 and choose "
        "[bold]ML Tracking[/] in the navigation."
    )
    elapsed = time.perf_counter() - started
    console.print(f"\n[bold]done in {elapsed:.0f}s[/]")
    if outcome.get(MAIN_DAG) != "success":
        raise SystemExit(1)


def _report(console: Any, store: Any, skip_failing: bool) -> None:
    from rich.table import Table

    from airflow_mltrack.errors import MLTrackError

    try:
        board = store.leaderboard(PROJECT, "accuracy", evaluation_set="validation", mode="max", limit=10)
    except MLTrackError as exc:
        console.print(f"[red]no leaderboard:[/] {exc}")
        board = []
    table = Table(title=f"Leaderboard: {PROJECT}, validation accuracy")
    for column in ("rank", "experiment", "status", "alpha", "eta0", "accuracy", "run"):
        table.add_column(column, justify="left" if column in ("status", "run") else "right")
    for row in board:
        params = row["hyperparameters"] or {}
        table.add_row(
            str(row["rank"]),
            f"{row['experiment_id']} {row['name']}",
            row["status"],
            f"{params.get('alpha', ''):g}" if isinstance(params.get("alpha"), int | float) else "",
            f"{params.get('eta0', ''):g}" if isinstance(params.get("eta0"), int | float) else "",
            f"{row['value']:.4f}",
            str(row["run_id"] or "").replace("manual__", "")[:19],
        )
    console.print(table)

    try:
        state = store.endpoint_state(PROJECT, ENDPOINT)
    except MLTrackError as exc:
        console.print(f"[red]no deployment:[/] {exc}")
        state = []
    deployed = Table(title=f"Endpoint {ENDPOINT}")
    for column in ("model id", "model", "version", "traffic %", "since"):
        deployed.add_column(column)
    for row in state:
        deployed.add_row(
            str(row["model_id"]),
            row["model_name"],
            row["model_version"],
            f"{row['traffic_percentage']:g}",
            str(row["promoted_at"])[:19],
        )
    console.print(deployed)

    if not skip_failing:
        try:
            failed = store.list_experiments(FAILING_PROJECT, status="Failed", limit=1)
        except MLTrackError:
            failed = []
        if failed:
            console.print(
                f"Failed experiment {failed[0]['experiment_id']} ({failed[0]['name']}): {failed[0]['error']}"
            )
        else:
            console.print(
                f"[yellow]no Failed experiment in {FAILING_PROJECT}[/] (is the status listener loaded?)"
            )
