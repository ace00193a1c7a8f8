"""``mltrack backfill``: import metrics that a task left in XCom, for a date range, outside the scheduler."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from airflow_mltrack.cli import cli
from airflow_mltrack.cli.options import resolve_url, store_options
from airflow_mltrack.vocabulary import mask_url as display_url

# Tests hand the in-process API app's client here (an ``httpx.Client``); None in real use.
_api_client_override: Any = None


def _range(date_from: str, date_to: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end): ``--to`` given as a date covers that whole day; as a datetime it is exclusive."""
    from airflow_mltrack.errors import MLTrackError
    from airflow_mltrack.reconcile import as_utc

    try:
        start = as_utc(date_from)
    except MLTrackError as exc:
        raise click.BadParameter(f"{date_from!r}: {exc.reason}", param_hint="'--from'") from None
    try:
        end = as_utc(date_to)
    except MLTrackError as exc:
        raise click.BadParameter(f"{date_to!r}: {exc.reason}", param_hint="'--to'") from None
    whole_day = "T" not in date_to and " " not in date_to.strip()
    if whole_day:
        end += dt.timedelta(days=1)
    if end <= start:
        rule = "on or after --from" if whole_day else "after --from (a datetime --to is exclusive)"
        raise click.BadParameter(f"{date_to!r}: must be {rule}: {date_from}", param_hint="'--to'")
    return start, end


def _rest_source(
    api_url: str | None, api_conn_id: str | None, token: str | None, user: str | None, password: str | None
) -> Any:
    from airflow_mltrack.reconcile import RestApiRunSource

    if api_conn_id:
        return RestApiRunSource.from_connection(api_conn_id, client=_api_client_override)
    if not api_url:
        from airflow.configuration import conf

        api_url = conf.get("api", "base_url", fallback="http://localhost:8080")
    return RestApiRunSource(
        api_url, token=token, username=user, password=password, client=_api_client_override
    )


def _pick_source(
    mode: str, dag_id: str, start: dt.datetime, end: dt.datetime, rest: dict[str, Any], say: Any
) -> tuple[Any, list[Any] | None]:
    """The run source (and, when it was probed, its runs): REST API first, metadata DB as the fallback."""
    from airflow_mltrack.errors import MLTrackError
    from airflow_mltrack.reconcile import MetadataDBRunSource

    if mode == "metadata-db":
        return MetadataDBRunSource(), None
    try:
        source = _rest_source(**rest)
        return source, source.list_runs(dag_id, start, end)
    except (MLTrackError, OSError, _transport_errors()) as exc:
        if mode == "rest-api":
            raise click.ClickException(f"the Airflow REST API is not usable: {exc}") from None
        say(
            f"[yellow]REST API not usable ({type(exc).__name__}: {str(exc)[:200]}): "
            "falling back to the metadata database[/yellow]"
        )
        return MetadataDBRunSource(), None


def _transport_errors() -> type[Exception]:
    import httpx

    return httpx.TransportError


@cli.command("backfill")
@click.option("--dag-id", required=True, help="DAG whose task returned the metrics.")
@click.option("--task-id", required=True, help="Task whose XCom holds the metric payload.")
@click.option("--from", "date_from", required=True, metavar="DATE", help="First logical date (inclusive).")
@click.option(
    "--to",
    "date_to",
    required=True,
    metavar="DATE",
    help="Last logical date: a date is inclusive (the whole day), a datetime exclusive.",
)
@click.option("--project", required=True, help="Tracking project of the experiments created for runs.")
@click.option("--xcom-key", default="return_value", show_default=True)
@click.option(
    "--evaluation-set",
    default="test",
    show_default=True,
    type=click.Choice(["train", "validation", "test", "inference"]),
    help="Split of payload values that do not name one.",
)
@click.option("--map-index", default=-1, show_default=True, type=int, help="Map index of a mapped task.")
@click.option(
    "--model-id", type=int, help="Model of created experiments (default: a placeholder per source)."
)
@click.option("--dataset-id", type=int, help="Dataset of created experiments (with --model-id).")
@click.option(
    "--source",
    "mode",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "rest-api", "metadata-db"]),
    help="Where runs and XComs are read: the REST API, the metadata DB, or the API with the DB as "
    "fallback when the API is not reachable.",
)
@click.option(
    "--api-url", help="Airflow API server root, e.g. http://localhost:8080 (default [api] base_url)."
)
@click.option(
    "--api-conn-id",
    help="An Airflow HTTP connection of the API server (host, login/password or a token as password).",
)
@click.option("--api-token", envvar="MLTRACK_API_TOKEN", help="Bearer token (JWT) for the API server.")
@click.option("--api-user", envvar="MLTRACK_API_USER", help="Username to get a token from /auth/token.")
@click.option("--api-password", envvar="MLTRACK_API_PASSWORD", help="Password for --api-user.")
@click.option(
    "--verify", is_flag=True, help="Read the XCom of runs that already have metrics too and upsert."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (no table).")
@store_options
def backfill_cmd(
    dag_id: str,
    task_id: str,
    date_from: str,
    date_to: str,
    project: str,
    xcom_key: str,
    evaluation_set: str,
    map_index: int,
    model_id: int | None,
    dataset_id: int | None,
    mode: str,
    api_url: str | None,
    api_conn_id: str | None,
    api_token: str | None,
    api_user: str | None,
    api_password: str | None,
    verify: bool,
    as_json: bool,
    url: str | None,
    conn_id: str,
) -> None:
    """Import the metrics a task returned (XCom) for every run in a date range into the tracking store.

    Each run's metrics go to the experiment linked to the run (created with a placeholder model and dataset
    when there is none). Runs that already have metrics are detected cheaply and skipped, so an
    interrupted backfill is resumed by running the same command again.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from airflow_mltrack.errors import MLTrackError
    from airflow_mltrack.hooks.mltrack import redaction_policy
    from airflow_mltrack.reconcile import Reconciler, SourceSpec
    from airflow_mltrack.store import TrackingStore

    err = Console(stderr=True)
    start, end = _range(date_from, date_to)
    spec_options = {"dag_id", "task_id", "project", "xcom_key", "evaluation_set", "map_index"}
    spec_options |= {"model_id", "dataset_id"}
    try:
        spec = SourceSpec.from_mapping(
            {
                "dag_id": dag_id,
                "task_id": task_id,
                "project": project,
                "xcom_key": xcom_key,
                "evaluation_set": evaluation_set,
                "map_index": map_index,
                "model_id": model_id,
                "dataset_id": dataset_id,
            }
        )
    except MLTrackError as exc:  # sources[0].<key>: name the option the user typed
        key = exc.field.rpartition(".")[2].split(" ")[0]
        option = f"'--{key.replace('_', '-')}'" if key in spec_options else None
        raise click.BadParameter(f"{exc.value!r}: {exc.reason}", param_hint=option) from None
    target = resolve_url(url, conn_id)
    store = TrackingStore.from_url(target, redaction=redaction_policy())
    store.check_ready()  # an unreachable store is said before Airflow's runs are read
    rest = {
        "api_url": api_url,
        "api_conn_id": api_conn_id,
        "token": api_token,
        "user": api_user,
        "password": api_password,
    }
    runs_source, runs = _pick_source(mode, dag_id, start, end, rest, lambda m: err.print(m, soft_wrap=True))
    reconciler = Reconciler(runs_source, store, verify=verify)
    try:
        if runs is None:
            runs = reconciler.plan(spec, start, end)
        else:
            runs = [r for r in runs if r.when is not None and start <= r.when < end]
        outcomes = []
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            console=err,
            disable=as_json and not err.is_terminal,
        ) as progress:
            bar = progress.add_task(f"{dag_id}.{task_id}", total=len(runs), counts="")
            counts = {"imported": 0, "already present": 0, "skipped": 0}
            for outcome in reconciler.reconcile_runs(spec, runs):
                outcomes.append(outcome)
                counts[outcome.outcome] += 1
                progress.update(bar, advance=1, counts=" ".join(f"{k}={v}" for k, v in counts.items()))
    except MLTrackError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        close = getattr(runs_source, "close", None)
        if close:
            close()

    from airflow_mltrack.reconcile import ReconcileReport

    report = ReconcileReport(outcomes)
    summary = {
        "source": runs_source.name,
        "store": display_url(target),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "runs": len(runs),
        **report.summary(),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _print_tables(report, summary)


def _print_tables(report: Any, summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(width=160)
    table = Table(title=f"Backfill {summary['from']} .. {summary['to']} via {summary['source']}")
    table.add_column("Outcome")
    table.add_column("Runs", justify="right")
    table.add_column("Metric rows", justify="right")
    for name, style in (("imported", "green"), ("already present", None), ("skipped", "yellow")):
        group = report.of(name)
        table.add_row(name, str(len(group)), str(sum(o.rows for o in group)), style=style if group else None)
    out.print(table)
    skipped = report.of("skipped")
    if skipped:
        detail = Table(title="Skipped runs")
        detail.add_column("Run")
        detail.add_column("Date")
        detail.add_column("Reason", overflow="fold")
        for o in skipped:
            detail.add_row(o.run_id, o.when.date().isoformat() if o.when else "-", o.reason or "")
        out.print(detail)
