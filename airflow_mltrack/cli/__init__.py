"""The ``mltrack`` command tree (also mounted as ``airflow mltrack``)."""

from __future__ import annotations

import click

from airflow_mltrack import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mltrack")
def cli() -> None:
    """airflow-mltrack: experiment tracking inside Apache Airflow."""


def _register() -> None:
    # Each module adds its commands to ``cli``; imported here so ``mltrack --help`` lists them all.
    import importlib

    for name in ("db", "inspect", "demo", "backfill"):
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
