"""``mltrack demo``: run the example DAGs on a throwaway Airflow and show what they tracked.

On a fresh machine: an AIRFLOW_HOME of its own (``./.mltrack/airflow`` unless AIRFLOW_HOME is set, or
``--airflow-home``), Airflow's metadata in SQLite there (``airflow db migrate``), the embedded tracking
store ``$AIRFLOW_HOME/mltrack.db`` (or ``AIRFLOW_CONN_MLTRACK_DEFAULT`` if set), the package's example
DAGs as the dags folder. Its ``airflow.cfg`` says so (``dags_folder``, ``load_examples = False``, new
DAGs paused), so a UI started on that home in another shell (``scripts/ui.sh``) shows our DAGs only and
starts no catch-up until you unpause ``metric_backfill``. Runs ``airflow dags test
train_evaluate_deploy`` and ``airflow dags test failing_training`` (which is meant to fail), then prints
the leaderboard of this run, the endpoint and how to open the UI. Running it again adds one more DAG run
of each (three more experiments); datasets and models keep their ids, and the demo says so.
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
from airflow_mltrack.vocabulary import DEFAULT_CONN_ID

MAIN_DAG = "train_evaluate_deploy"
FAILING_DAG = "failing_training"
PROJECT = "digits-demo"
ENDPOINT = "digits-classifier"
FAILING_PROJECT = "diabetes-demo"
DEFAULT_HOME = Path(".mltrack") / "airflow"
_FINISHED = re.compile(
    r"DagRun Finished: dag_id=(?P<dag>[^,]+),.*?\brun_id=(?P<run>[^,\s]+),.*?\bstate=(?P<state>\w+)"
)
# airflow.cfg of the demo home: read by every later `airflow` command on it, in any shell.
DEMO_CONFIG = {"load_examples": "False", "dags_are_paused_at_creation": "True"}
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def example_dags_folder() -> Path:
    """The example DAGs: ``dags/`` of a source checkout, else ``airflow_mltrack/example_dags`` (wheel)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "dags", package / "example_dags"):
        if (candidate / f"{MAIN_DAG}.py").is_file():
            return candidate
    raise click.ClickException(
        f"cannot find the example DAGs ({MAIN_DAG}.py) in {package.parent / 'dags'} or {package / 'example_dags'}"
    )


def set_config_options(path: Path, section: str, options: dict[str, str]) -> None:
    """Set ``options`` in ``[section]`` of an ini file, keeping every other line (and comment) as it is."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    pending = dict(options)
    out: list[str] = []
    current = None

    def flush() -> None:
        out.extend(f"{key} = {value}" for key, value in pending.items())
        pending.clear()

    for line in lines:
        header = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if header:
            if current == section:
                flush()
            current = header.group(1).strip()
        elif current == section:
            match = re.match(r"\s*([A-Za-z0-9_]+)\s*=", line)
            if match and match.group(1) in options:
                if match.group(1) in pending:
                    out.append(f"{match.group(1)} = {pending.pop(match.group(1))}")
                continue
        out.append(line)
    if current == section:
        flush()
    if pending:
        out.extend(["", f"[{section}]"])
        flush()
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def configure_home(home: Path, dags: Path) -> Path:
    """Write the demo settings into ``home/airflow.cfg``; returns its path.

    A missing file is first written by Airflow itself (with the home's own secrets: the JWT secret the
    API server and the scheduler must share), then changed.
    """
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "airflow.cfg"
    if not cfg.is_file():
        subprocess.run(  # noqa: S603 - our own interpreter and a fixed statement
            [
                sys.executable,
                "-c",
                "from airflow.configuration import write_default_airflow_configuration_if_needed as w; w()",
            ],
            env={**os.environ, "AIRFLOW_HOME": str(home)},
            capture_output=True,
            check=False,
        )
    set_config_options(cfg, "core", {"dags_folder": str(dags), **DEMO_CONFIG})
    return cfg


def _airflow_env(home: Path, dags: Path) -> dict[str, str]:
    env = os.environ.copy()
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # The home's airflow.cfg decides (new DAGs paused, so metric_backfill starts no catch-up by itself).
    env.pop("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", None)
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


def _store_url(home: Path) -> str:
    """The tracking store the DAG runs write to (noted for a one-line error if it cannot be reached)."""
    from airflow_mltrack.cli.options import remember_store_url

    if os.environ.get("AIRFLOW_CONN_MLTRACK_DEFAULT"):
        from airflow_mltrack.hooks import MLTrackHook

        return remember_store_url(MLTrackHook.resolve_url(DEFAULT_CONN_ID))
    return remember_store_url(f"sqlite:///{home / 'mltrack.db'}")


def _check_store(url: str) -> None:
    """Connect once, so an unreachable store fails the demo now, in one line, not after the DAG runs."""
    from airflow_mltrack.store.engine import get_engine

    with get_engine(url).connect():
        pass


@cli.command("demo")
@click.option(
    "--airflow-home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="AIRFLOW_HOME to use (default: $AIRFLOW_HOME if set, else ./.mltrack/airflow).",
)
@click.option("--skip-failing", is_flag=True, help=f"Do not run {FAILING_DAG}.")
@click.option(
    "--config-only",
    is_flag=True,
    help="Only write the demo settings into the home's airflow.cfg (our DAGs, no Airflow examples, new "
    "DAGs paused) and print the home; scripts/ui.sh runs this before starting Airflow.",
)
def demo(airflow_home: Path | None, skip_failing: bool, config_only: bool) -> None:
    """Run the example DAGs on a local Airflow and show the leaderboard and the deployment."""
    from rich.console import Console

    console = Console()
    started = time.perf_counter()
    home = (airflow_home or Path(os.environ.get("AIRFLOW_HOME") or DEFAULT_HOME)).expanduser().resolve()
    dags = example_dags_folder()
    configure_home(home, dags)
    if config_only:
        click.echo(str(home))
        return
    env = _airflow_env(home, dags)
    log_path = home / "mltrack-demo.log"
    console.print(f"[bold]AIRFLOW_HOME[/] {home}\n[bold]DAGs[/] {dags}\n[bold]log[/] {log_path}")
    store_url = _store_url(home)
    _check_store(store_url)

    with console.status("airflow db migrate (Airflow's metadata database)..."):
        code, output = _airflow(["db", "migrate"], env, log_path)
    if code != 0:
        console.print(_tail(output))
        raise click.ClickException(f"airflow db migrate failed (exit {code}); see {log_path}")
    console.print(f"[green]✓[/] metadata database ready ({time.perf_counter() - started:.0f}s)")

    runs = [(MAIN_DAG, "success")] + ([] if skip_failing else [(FAILING_DAG, "failed")])
    outcome: dict[str, str] = {}
    run_ids: dict[str, str | None] = {}
    for dag_id, expected in runs:
        t0 = time.perf_counter()
        with console.status(f"airflow dags test {dag_id} ..."):
            code, output = _airflow(["dags", "test", dag_id], env, log_path)
        state = outcome[dag_id] = _run_state(dag_id, code, output)
        run_ids[dag_id] = _run_id(dag_id, output)
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
    # New DAGs are paused in this home (metric_backfill's catch-up starts only when you unpause it);
    # the two demo DAGs have no schedule, so unpaused they run only when triggered.
    _airflow(
        ["dags", "unpause", "--yes", "--treat-dag-id-as-regex", f"^({MAIN_DAG}|{FAILING_DAG})$"],
        env,
        log_path,
    )

    from airflow_mltrack.store import TrackingStore

    _report(console, TrackingStore.from_url(store_url), run_ids, skip_failing)
    _print_ui_help(console, home)
    elapsed = time.perf_counter() - started
    console.print(f"\n[bold]done in {elapsed:.0f}s[/]")
    if outcome.get(MAIN_DAG) != "success":
        raise SystemExit(1)


def _run_id(dag_id: str, output: str) -> str | None:
    ids = [m.group("run") for m in _FINISHED.finditer(output) if m.group("dag").strip() == dag_id]
    return ids[-1] if ids else None


def ui_command(home: Path) -> str:
    """The one command that opens the UI on ``home``, from any directory and any shell."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "ui.sh"
    if script.is_file():
        return f"AIRFLOW_HOME={home} bash {script}"
    return f"PATH={Path(sys.executable).parent}:$PATH AIRFLOW_HOME={home} airflow standalone"


def _print_ui_help(console: Any, home: Path) -> None:
    console.print("\n[bold]Open the UI[/] (any shell; Ctrl-C stops it):")
    for line in (
        f"  {ui_command(home)}",
        "then http://localhost:8080 and ML Tracking in the navigation; user admin, password in",
        f"  {home / PASSWORDS_FILE} (written on the first start).",
        "metric_backfill is paused: unpause it to start its daily catch-up.",
    ):
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else ""


def _report(console: Any, store: Any, run_ids: dict[str, str | None], skip_failing: bool) -> None:
    from rich.table import Table

    from airflow_mltrack.errors import MLTrackError

    run_id = run_ids.get(MAIN_DAG)
    try:
        board = store.leaderboard(PROJECT, "accuracy", evaluation_set="validation", mode="max", limit=1000)
    except MLTrackError as exc:
        console.print(f"[red]no leaderboard:[/] {exc}")
        board = []
    mine = [row for row in board if row["run_id"] == run_id] if run_id else board
    table = Table(
        title=f"Leaderboard: {PROJECT}, validation accuracy" + (", this run" if run_id else ""),
        caption=f"DAG run {run_id}" if run_id else None,
    )
    table.add_column("rank", justify="right", no_wrap=True)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("experiment", overflow="fold", min_width=10)
    table.add_column("status", no_wrap=True)
    table.add_column("alpha", justify="right", no_wrap=True)
    table.add_column("eta0", justify="right", no_wrap=True)
    table.add_column("accuracy", justify="right", no_wrap=True)
    if not run_id:
        table.add_column("run", overflow="fold", min_width=10)
    for rank, row in enumerate(mine, start=1):
        params = row["hyperparameters"] or {}
        cells = [str(rank), str(row["experiment_id"]), row["name"], row["status"]]
        cells += [_number(params.get("alpha")), _number(params.get("eta0")), f"{row['value']:.4f}"]
        table.add_row(*cells, *([] if run_id else [str(row["run_id"] or "")]))
    console.print(table)
    earlier = len(board) - len(mine)
    if earlier:
        console.print(
            f"[yellow]{earlier} more experiment(s) in {PROJECT} come from earlier demo runs on this home:[/] "
            f"each `mltrack demo` adds one run of {MAIN_DAG} (3 experiments) and of {FAILING_DAG} "
            "(1 experiment); datasets, models and the endpoint are reused. The UI lists them all; a new "
            "--airflow-home gives a clean demo."
        )

    try:
        state = store.endpoint_state(PROJECT, ENDPOINT)
    except MLTrackError as exc:
        console.print(f"[red]no deployment:[/] {exc}")
        state = []
    deployed = Table(title=f"Endpoint {ENDPOINT}")
    for column in ("model id", "model", "version", "traffic %", "since"):
        deployed.add_column(column, overflow="fold")
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
        failing_run = run_ids.get(FAILING_DAG)
        try:
            failed = store.list_experiments(FAILING_PROJECT, status="Failed", run_id=failing_run, limit=1)
        except MLTrackError:
            failed = []
        if failed:
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True, style="bold")
            grid.add_column(overflow="fold")
            grid.add_row("Failed experiment", f"id {failed[0]['experiment_id']}: {failed[0]['name']}")
            grid.add_row("error", str(failed[0]["error"] or ""))
            console.print(grid)
        else:
            console.print(
                f"[yellow]no Failed experiment in {FAILING_PROJECT}[/] (is the status listener loaded?)"
            )
