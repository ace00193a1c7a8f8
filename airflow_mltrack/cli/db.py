"""``mltrack db ...``: migrate the tracking store and check it against the models."""

from __future__ import annotations

import click

from airflow_mltrack.cli import cli
from airflow_mltrack.cli.options import resolve_url, revision_errors, store_options
from airflow_mltrack.vocabulary import mask_url


@cli.group("db")
def db() -> None:
    """Schema of the tracking store: upgrade, downgrade, current revision, drift check."""


@db.command("upgrade")
@click.argument("revision", default="head")
@store_options
def upgrade_cmd(revision: str, url: str | None, conn_id: str) -> None:
    """Upgrade the tracking store to REVISION (default: head)."""
    from airflow_mltrack.store import migrations

    target = resolve_url(url, conn_id)
    with revision_errors(revision):
        migrations.upgrade(target, revision)
    click.echo(f"{mask_url(target)}: at revision {migrations.current_revision(target)}")


@db.command("downgrade")
@click.argument("revision")
@store_options
def downgrade_cmd(revision: str, url: str | None, conn_id: str) -> None:
    """Downgrade the tracking store to REVISION (required: e.g. ``-1`` or ``base``, which drops everything)."""
    from airflow_mltrack.store import migrations

    target = resolve_url(url, conn_id)
    with revision_errors(revision):
        migrations.downgrade(target, revision)
    click.echo(f"{mask_url(target)}: at revision {migrations.current_revision(target) or 'base'}")


@db.command("current")
@store_options
def current_cmd(url: str | None, conn_id: str) -> None:
    """Print the revision the tracking store is at (and the newest one this package ships)."""
    from airflow_mltrack.store import migrations

    target = resolve_url(url, conn_id)
    current = migrations.current_revision(target)
    head = migrations.head_revision()
    if current is None:
        state = "not initialized (run `mltrack db upgrade`)"
    elif current == head:
        state = "head"
    else:
        state = f"behind head {head} (run `mltrack db upgrade`)"
    click.echo(f"{current or 'None'} ({state})")


@db.command("check")
@store_options
def check_cmd(url: str | None, conn_id: str) -> None:
    """Compare the live schema with the models: one line per difference, exit code 1 if any."""
    from airflow_mltrack.store import migrations

    target = resolve_url(url, conn_id)
    differences = migrations.check_drift(target)
    if not differences:
        click.echo("No drift")
        return
    for line in differences:
        click.echo(line)
    click.echo(f"{len(differences)} difference(s) between {mask_url(target)} and the models", err=True)
    raise click.exceptions.Exit(1)
