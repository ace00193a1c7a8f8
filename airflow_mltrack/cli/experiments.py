"""``mltrack experiments list|show|compare`` and ``mltrack leaderboard``: look at experiments from a shell.

The same reads as the JSON API and the pages (``store/reads``), the same search language
(``--filter``/``--order-by``, see :mod:`airflow_mltrack.store.search`) and the same secrets policy: the
store is opened with the hook's redaction policy and every read goes through
:func:`airflow_mltrack.plugins.loaders.hide_secrets` before it is printed. The CLI reads as a user
with access to the database: every DAG's experiments are shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from airflow_mltrack.cli import cli
from airflow_mltrack.cli.options import resolve_url, store_options
from airflow_mltrack.cli.tables import (
    NONE,
    cell,
    console,
    duration_seconds,
    echo_csv,
    echo_json,
    fmt_duration,
    fmt_number,
    fmt_time,
    fmt_value,
    fmt_version,
    format_option,
    params_tree,
    safe_text,
)
from airflow_mltrack.errors import MLTrackError

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

#: What the CLI reads as: no DAG filter (``visible_dag_ids`` None), like the database user it connects as.
EVERY_DAG = SimpleNamespace(visible_dag_ids=None)
# The store's limits (experiment_list.MAX_PAGE, compare.MAX_COMPARED), spelled here so `mltrack --help`
# does not import the store; tests/cli/test_experiments_cli.py ties them.
MAX_LIMIT = 500
MAX_COMPARED = 100
_SEARCH_OPTIONS = {"filter": "--filter", "order_by": "--order-by", "columns": "--columns"}
_BASE = ("experiment_id", "name", "project", "status", "start_time", "end_time", "duration_seconds")


class SearchUsageError(click.ClickException):
    """A ``--filter``/``--order-by``/``--columns`` the store cannot read: one line, exit code 2 (a usage
    error, as click's own), naming the option, the token and its position."""

    exit_code = 2


def open_store(url: str | None, conn_id: str) -> TrackingStore:
    """The tracking store of ``--url``/``--conn-id``, with the hook's redaction policy (Airflow's
    sensitive names and secrets masker), as the API's stores have."""
    from airflow_mltrack.hooks.mltrack import redaction_policy
    from airflow_mltrack.store import TrackingStore

    return TrackingStore.from_url(resolve_url(url, conn_id), redaction=redaction_policy())


# -- experiments list ------------------------------------------------------------------------------------
@cli.group("experiments")
def experiments_group() -> None:
    """Look at experiments: list (with the search language), show one, compare several."""


@experiments_group.command("list")
@click.option(
    "--filter",
    "search",
    metavar="EXPR",
    help="MLflow search syntax, e.g. \"metrics.test.accuracy > 0.9 and params.optimizer = 'adam'\" "
    "(keys metrics.<split>.<name>, params.<key>, tags.<name> IS [NOT] NULL, attributes.<status|name|"
    "dag_id|start_time|duration|...>; = != < <= > >= LIKE ILIKE IN IS NULL, AND/OR, parentheses).",
)
@click.option(
    "--order-by",
    "order_by",
    multiple=True,
    metavar="CLAUSE",
    help="'<key> [ASC|DESC]', e.g. 'metrics.test.accuracy DESC'; repeat for ties. Default: newest first.",
)
@click.option(
    "--columns",
    multiple=True,
    metavar="KEY,...",
    help="Columns: metrics.<split>.<name> (the final value; json also gives min, max, step, points), "
    "params.<key> or attributes.<name>; comma-separated or repeated. Headers and json/csv keys are "
    "the canonical keys (metrics.accuracy -> metrics.<the split it is logged on>.accuracy).",
)
@click.option("--project", default=None, help="Only experiments of this project.")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@format_option()
@store_options
def list_cmd(
    search: str | None,
    order_by: tuple[str, ...],
    columns: tuple[str, ...],
    project: str | None,
    limit: int,
    offset: int,
    fmt: str,
    url: str | None,
    conn_id: str,
) -> None:
    """List experiments matching a search expression: id, name, project, status, start, duration, and the
    chosen columns. A filter that cannot be read is one line naming the token and its position (exit 2)."""
    from airflow_mltrack.plugins.loaders import hide_secrets
    from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page
    from airflow_mltrack.store.search import parse_columns, parse_filter, parse_order_by

    clauses = tuple(clause for clause in order_by if clause.strip())
    with search_errors():  # a mistake is said before the store is opened
        parse_filter(search)
        parse_order_by(list(clauses))
        parse_columns(list(columns))
    store = open_store(url, conn_id)
    where = ExperimentFilter(
        project=project or None,
        search=search or None,
        order_by=clauses,
        columns=columns,
        limit=limit,
        offset=offset,
    )
    with search_errors():
        page = experiment_page(store, where, None)
    items = hide_secrets(store, page["items"])
    # The columns as the store named them: the key as written, its canonical spelling, its kind.
    described = list({c["canonical"]: c for c in page["columns"]}.values())
    keys = [c["canonical"] for c in described]
    for row in items:
        row["duration_seconds"] = duration_seconds(row)
        row["columns"] = {c["canonical"]: (row.get("columns") or {}).get(c["key"]) for c in described}
    if fmt == "json":
        echo_json([{**{k: row.get(k) for k in (*_BASE, "tags")}, **row["columns"]} for row in items])
    elif fmt == "csv":
        echo_csv(
            [*_BASE, *keys],
            ([row.get(k) for k in _BASE] + [_scalar(row["columns"][k]) for k in keys] for row in items),
        )
    else:
        _print_list(items, described, page["total"], offset)


@contextmanager
def search_errors() -> Iterator[None]:
    """A filter, order-by or column the store refuses -> one line naming the option (exit code 2)."""
    try:
        yield
    except MLTrackError as exc:
        option = _SEARCH_OPTIONS.get(exc.field)
        if option is None:
            raise
        raise SearchUsageError(f"Invalid value for '{option}': {exc}") from None


def _scalar(value: Any) -> Any:
    """A column's value in one cell: a metric's final value (its ``value``), anything else as it is."""
    return value.get("value") if isinstance(value, dict) and {"value", "points"} <= set(value) else value


def _shown(value: Any, kind: str) -> str:
    if kind == "time":
        return fmt_time(value)
    if kind == "duration":
        return fmt_duration(value)
    return fmt_number(_scalar(value)) if kind == "number" else fmt_value(value)


def _print_list(items: list[dict[str, Any]], columns: list[dict[str, str]], total: int, offset: int) -> None:
    from rich.table import Table

    shown = f"{offset + 1}-{offset + len(items)}" if items else "none"
    table = Table(caption=f"{shown} of {total} experiment(s)", caption_justify="left")
    for title, justify in (("ID", "right"), ("Name", "left"), ("Project", "left"), ("Status", "left")):
        table.add_column(title, justify=justify, max_width=40 if title == "Name" else None)  # type: ignore[arg-type]
    table.add_column("Start", no_wrap=True)
    table.add_column("Duration", justify="right", no_wrap=True)
    for column in columns:
        right = column["kind"] in ("number", "duration")
        table.add_column(cell(column["canonical"]), justify="right" if right else "left", max_width=40)
    for row in items:
        values = [
            str(row["experiment_id"]),
            row["name"],
            row["project"],
            row["status"],
            fmt_time(row.get("start_time")),
            fmt_duration(row["duration_seconds"]),
        ]
        values += [_shown(row["columns"][c["canonical"]], c["kind"]) for c in columns]
        table.add_row(*(cell(v) for v in values), style=_STATUS_STYLE.get(row["status"]))
    console().print(table)


_STATUS_STYLE = {"Failed": "red", "Cancelled": "yellow"}


# -- experiments show ------------------------------------------------------------------------------------
@experiments_group.command("show")
@click.argument("experiment_id", type=click.IntRange(1), metavar="ID")
@format_option()
@store_options
def show_cmd(experiment_id: int, fmt: str, url: str | None, conn_id: str) -> None:
    """One experiment: project, dataset, model, DAG/run/task, times, status, error, tags, notes,
    hyperparameters (a tree) and its metrics (split, name, final, min, max, points). csv: the metrics."""
    from airflow_mltrack.plugins.loaders import hide_secrets

    store = open_store(url, conn_id)
    experiment: dict[str, Any] = dict(store.get_experiment(experiment_id))
    hide_secrets(store, [experiment])
    metrics = [dict(m) for m in store.latest_metrics(experiment_id)]
    if fmt == "json":
        experiment["duration_seconds"] = duration_seconds(experiment)
        echo_json({"experiment": experiment, "metrics": metrics})
        return
    metric_fields = ("evaluation_set", "name", "value", "min_value", "max_value", "step", "points")
    if fmt == "csv":
        echo_csv(metric_fields, ([m[k] for k in metric_fields] for m in metrics))
        return
    _print_experiment(experiment, metrics)


def _link(experiment: dict[str, Any]) -> str:
    if not experiment.get("dag_id"):
        return NONE
    parts = [experiment["dag_id"], experiment.get("run_id") or NONE, experiment.get("task_id") or NONE]
    text = " / ".join(parts)
    map_index = experiment.get("map_index")
    if map_index is not None and map_index >= 0:
        text += f" [{map_index}]"
    if experiment.get("try_number") is not None:
        text += f" (try {experiment['try_number']})"
    return text


def _print_experiment(experiment: dict[str, Any], metrics: list[dict[str, Any]]) -> None:
    from rich.table import Table

    out = console()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    status_style = _STATUS_STYLE.get(
        experiment["status"], "green" if experiment["status"] == "Completed" else None
    )
    rows: list[tuple[str, str, str | None]] = [
        ("Project", experiment["project"], None),
        ("Dataset", f"{experiment['dataset_name']} {fmt_version(experiment['dataset_version'])}", None),
        ("Model", f"{experiment['model_name']} {fmt_version(experiment['model_version'])}", None),
        ("DAG / run / task", _link(experiment), None),
        ("Status", experiment["status"], status_style),
        ("Started", fmt_time(experiment.get("start_time"), compact=False), None),
        ("Ended", fmt_time(experiment.get("end_time"), compact=False), None),
        ("Duration", fmt_duration(duration_seconds(experiment)), None),
        ("Tags", ", ".join(experiment.get("tags") or []) or NONE, None),
        ("Code version", experiment.get("code_version") or NONE, None),
    ]
    for label, key in (("Description", "description"), ("Notes", "notes"), ("Error", "error")):
        if experiment.get(key):
            rows.append((label, experiment[key], "red" if key == "error" else None))
    for label, value, style in rows:
        facts.add_row(cell(label), cell(value, style, multiline=True))
    out.print(cell(f"Experiment {experiment['experiment_id']}: {safe_text(experiment['name'])}", "bold"))
    out.print(facts)
    out.print()
    out.print(params_tree(experiment.get("hyperparameters")))
    out.print()
    table = Table(title="Metrics", title_justify="left")
    for title in ("Split", "Name", "Final", "Min", "Max", "Step", "Points"):
        table.add_column(title, justify="left" if title in ("Split", "Name") else "right")
    for m in metrics:
        numbers = (m["value"], m["min_value"], m["max_value"])
        table.add_row(
            cell(m["evaluation_set"]),
            cell(m["name"]),
            *(cell(fmt_number(x)) for x in numbers),
            cell(NONE if m["step"] is None else str(m["step"])),
            cell(str(m["points"])),
        )
    out.print(table if metrics else cell("Metrics: none"))


# -- experiments compare ---------------------------------------------------------------------------------
@experiments_group.command("compare")
@click.argument("experiment_ids", nargs=-1, required=True, type=click.IntRange(1), metavar="ID ID...")
@click.option("--all", "show_all", is_flag=True, help="Every hyperparameter, not only those that differ.")
@format_option()
@store_options
def compare_cmd(
    experiment_ids: tuple[int, ...], show_all: bool, fmt: str, url: str | None, conn_id: str
) -> None:
    """2 to 100 experiments side by side: the hyperparameters that differ (all with --all) and the final
    value of each metric, the best of each row marked with * (lower is better for names containing loss,
    error, mse, mae, rmse, perplexity; higher for any other)."""
    from airflow_mltrack.plugins.loaders import load_compare

    ids = list(dict.fromkeys(experiment_ids))
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise click.BadParameter(
            f"{len(ids)} distinct id(s): give 2 to {MAX_COMPARED}", param_hint="'ID ID...'"
        )
    store = open_store(url, conn_id)
    result = load_compare(store, EVERY_DAG, ids)  # type: ignore[arg-type]
    keys = list(result["hyperparameters"]) if show_all else list(result["differing"])
    params = {key: result["hyperparameters"][key] for key in keys}
    if fmt == "json":
        echo_json(
            {
                "experiments": [
                    {k: e.get(k) for k in (*_BASE[:5], "end_time")} for e in result["experiments"]
                ],
                "hyperparameters": params,
                "differing": result["differing"],
                "metrics": result["metrics"],
            }
        )
        return
    header = ["key", *(str(i) for i in ids)]
    lines: list[list[Any]] = [["name", *(e["name"] for e in result["experiments"])]]
    lines += [[f"params.{k}", *(_csv_param(params[k].get(i)) for i in ids)] for k in keys]
    lines += [
        [f"metrics.{m['evaluation_set']}.{m['name']}", *(m["values"].get(i) for i in ids)]
        for m in result["metrics"]
    ]
    if fmt == "csv":
        echo_csv(header, lines)
        return
    _print_compare(result, ids, keys, show_all)


def _csv_param(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float) else fmt_value(value)


def _print_compare(result: dict[str, Any], ids: list[int], keys: list[str], show_all: bool) -> None:
    from rich.table import Table

    out = console()
    names = {e["experiment_id"]: e["name"] for e in result["experiments"]}
    table = Table(
        title="Hyperparameters" + ("" if show_all else " that differ (--all: every one)"),
        title_justify="left",
    )
    table.add_column("Key", style="bold", max_width=40)
    for i in ids:
        table.add_column(cell(f"{i} {safe_text(names[i])}"), max_width=30)
    differing = set(result["differing"])
    for key in keys:
        style = "yellow" if show_all and key in differing else None
        table.add_row(
            cell(key, style), *(cell(fmt_value(result["hyperparameters"][key].get(i))) for i in ids)
        )
    out.print(table if keys else cell("Hyperparameters: " + ("none" if show_all else "no differences")))
    metrics = Table(title="Final metrics (* best of the row)", title_justify="left")
    metrics.add_column("Split", no_wrap=True)
    metrics.add_column("Metric", max_width=40)
    for i in ids:
        metrics.add_column(cell(str(i)), justify="right", no_wrap=True)
    for m in result["metrics"]:
        best = set(m.get("best") or ())
        arrow = "↓" if m.get("lower_is_better") else "↑"
        values = [
            cell(f"*{fmt_number(m['values'][i])}", "bold green")
            if i in best
            else cell(fmt_number(m["values"].get(i)))
            for i in ids
        ]
        metrics.add_row(cell(m["evaluation_set"]), cell(f"{m['name']} {arrow}"), *values)
    out.print(metrics if result["metrics"] else cell("Final metrics: none"))


# -- leaderboard -----------------------------------------------------------------------------------------
@cli.command("leaderboard")
@click.option("--project", required=True, help="Project name.")
@click.option("--metric", required=True, help="Metric name, e.g. accuracy.")
@click.option(
    "--split",
    default="test",
    show_default=True,
    type=click.Choice(["train", "validation", "test", "inference"]),
    help="The evaluation set of the metric.",
)
@click.option("--mode", type=click.Choice(["max", "min"]), default="max", show_default=True)
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=10, show_default=True)
@format_option()
@store_options
def leaderboard_cmd(
    project: str, metric: str, split: str, mode: str, limit: int, fmt: str, url: str | None, conn_id: str
) -> None:
    """The best experiments of a project by the final value of a metric (finite values of Pending,
    Running and Completed experiments only, as the UI's leaderboard)."""
    from airflow_mltrack.plugins.loaders import load_leaderboard

    store = open_store(url, conn_id)
    board = load_leaderboard(store, EVERY_DAG, project, metric, split, mode, limit)  # type: ignore[arg-type]
    fields = ("rank", "experiment_id", "name", "status", "value", "step", "dag_id", "run_id")
    if fmt == "json":
        echo_json(
            [
                {**{k: row.get(k) for k in fields}, "hyperparameters": row.get("hyperparameters")}
                for row in board
            ]
        )
        return
    if fmt == "csv":
        echo_csv(fields, ([row.get(k) for k in fields] for row in board))
        return
    from rich.table import Table

    table = Table(title=f"{project}: {split} {metric} ({mode})", title_justify="left")
    for title in ("Rank", "ID", "Name", "Status", metric, "Step", "DAG run"):
        right = title in ("Rank", "ID", metric, "Step")
        table.add_column(cell(title), justify="right" if right else "left", max_width=None if right else 40)
    for row in board:
        run = f"{row['dag_id']} / {row['run_id']}" if row.get("dag_id") else NONE
        step = NONE if row.get("step") is None else str(row["step"])
        values = (
            str(row["rank"]),
            str(row["experiment_id"]),
            row["name"],
            row["status"],
            fmt_number(row["value"]),
            step,
            run,
        )
        table.add_row(*(cell(x) for x in values))
    console().print(table if board else cell(f"No experiment of {project!r} has a finite {split} {metric}."))
