"""The ``mltrack`` command tree (also mounted as ``airflow mltrack``)."""

from __future__ import annotations

from typing import Any

import click

from airflow_mltrack import __version__


class MLTrackGroup(click.Group):
    """The root group: a store that cannot be reached, or a refusal, is one line and exit code 1.

    ``mltrack --debug ...`` (or ``--debug`` on a store command, or ``MLTRACK_DEBUG=1``) shows the
    traceback instead.
    """

    def invoke(self, ctx: click.Context) -> Any:
        from airflow_mltrack.cli.options import debug_enabled, store_error_message, tag_engine_errors

        tag_engine_errors()
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = store_error_message(exc, ctx.meta)
            if message is None or debug_enabled(ctx):
                raise
            raise click.ClickException(message) from None


@click.group(cls=MLTrackGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mltrack")
@click.option(
    "--debug",
    is_flag=True,
    envvar="MLTRACK_DEBUG",
    help="Show the full traceback when the tracking store cannot be reached (also MLTRACK_DEBUG=1).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """airflow-mltrack: experiment tracking inside Apache Airflow."""
    if debug:
        ctx.meta["mltrack.debug"] = True


def _register() -> None:
    # Each module adds its commands to ``cli``; imported here so ``mltrack --help`` lists them all.
    import importlib

    for name in ("db", "inspect", "demo", "backfill", "experiments"):
        try:
            importlib.import_module(f"airflow_mltrack.cli.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"airflow_mltrack.cli.{name}":
                raise


_register()


def main() -> None:
    """Console-script entry point."""
    import os

    # Like `airflow connections get`: let --conn-id resolve connections stored in Airflow's metadata DB,
    # not only AIRFLOW_CONN_* variables and secrets backends.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    cli()
