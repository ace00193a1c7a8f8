"""``mltrack erd`` and ``mltrack integrity``: look at the LIVE tracking database (not the models)."""

from __future__ import annotations

import json

import click

from airflow_mltrack.cli import cli
from airflow_mltrack.cli.options import resolve_url, store_options
from airflow_mltrack.vocabulary import mask_url


@cli.command("erd")
@click.option(
    "--all-tables",
    is_flag=True,
    help="Every table of the database (default: the tracking tables and tables linked to them).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
@store_options
def erd_cmd(all_tables: bool, output: str | None, url: str | None, conn_id: str) -> None:
    """Print the live schema as a Mermaid erDiagram (cardinality from the real foreign keys)."""
    from airflow_mltrack.store.engine import get_engine
    from airflow_mltrack.store.introspect import erd_mermaid, tracking_tables

    engine = get_engine(resolve_url(url, conn_id))
    tables = tracking_tables(engine, all_tables=all_tables)
    if not tables:
        raise click.ClickException(
            f"no tables in {mask_url(engine.url.render_as_string())} (run `mltrack db upgrade`)"
        )
    diagram = erd_mermaid(engine, tables)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(diagram)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(diagram, nl=False)


@cli.command("integrity")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@store_options
def integrity_cmd(as_json: bool, url: str | None, conn_id: str) -> None:
    """Count orphaned rows and rule violations in the live database; exit code 1 if any (warnings, such
    as an endpoint serving less than 100 % of its traffic, are shown but do not count)."""
    from airflow_mltrack.store.engine import get_engine
    from airflow_mltrack.store.introspect import integrity_report

    target = resolve_url(url, conn_id)
    report = integrity_report(get_engine(target))
    if not report:
        raise click.ClickException(f"no tracking tables in {mask_url(target)} (run `mltrack db upgrade`)")
    problems = sum(row["count"] for row in report if row.get("severity") != "warning")
    warnings = sum(row["count"] for row in report if row.get("severity") == "warning")

    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"Integrity of {mask_url(target)}")
        table.add_column("Table")
        table.add_column("Check")
        table.add_column("Count", justify="right")
        table.add_column("Detail")
        for row in report:
            warning = row.get("severity") == "warning"
            style = ("yellow" if warning else "bold red") if row["count"] else None
            check = f"{row['check']} (warning)" if warning else row["check"]
            table.add_row(row["table"], check, str(row["count"]), row["detail"], style=style)
        Console(width=160).print(table)
        click.echo(f"{problems} problem row(s)" if problems else "No problems")
        if warnings:
            click.echo(f"{warnings} warning(s) (not problems)")
    if problems:
        raise click.exceptions.Exit(1)
