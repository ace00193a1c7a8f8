"""``airflow mltrack ...``: the ``mltrack`` click command tree mounted in Airflow's CLI.

Airflow 3.3 lets a provider add CLI commands through the ``cli`` key of its provider info: a list of
functions returning ``list[CLICommand]``, which ``airflow/cli/cli_parser.py`` appends to the core
commands (see ``ProvidersManager.cli_command_functions``). Airflow's CLI is argparse, ours is click, so
this adds ONE argparse command, ``mltrack``, that hands everything after it to the click group: the
commands, options and ``--help`` of ``airflow mltrack X`` are exactly those of ``mltrack X``.

This module is imported on every ``airflow`` invocation: keep it light (the click tree is imported only
when ``airflow mltrack`` runs).
"""

from __future__ import annotations

import argparse

from airflow.cli.cli_config import ActionCommand, Arg, CLICommand

_HELP = "Experiment tracking (airflow-mltrack): run `airflow mltrack` for its commands"


def run_mltrack(args: argparse.Namespace) -> None:
    """Run the ``mltrack`` click group with the arguments given after ``airflow mltrack``."""
    import os

    # As `airflow connections get/test` do: a CLI process resolves connections through the server chain
    # (environment, secrets backends AND the metadata database), so --conn-id finds connections made in
    # the UI. Without it the task SDK's fallback chain skips the metadata database.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")

    from airflow_mltrack.cli import cli

    argv = list(args.mltrack_args or [])
    if argv and argv[0] == "--":
        argv = argv[1:]
    if getattr(args, "mltrack_version", False):
        argv = ["--version", *argv]
    if not argv:
        argv = ["--help"]
    # standalone_mode: click prints usage errors and exits with its own exit codes, as `mltrack` does.
    cli.main(args=argv, prog_name="airflow mltrack", standalone_mode=True)


ARG_MLTRACK_ARGS = Arg(
    ("mltrack_args",),
    metavar="COMMAND [ARGS]...",
    nargs=argparse.REMAINDER,
    help="An `mltrack` command and its arguments (`airflow mltrack <command> --help` for each).",
)
ARG_MLTRACK_VERSION = Arg(
    ("--version",),
    dest="mltrack_version",
    action="store_true",
    help="Show the airflow-mltrack version.",
)

MLTRACK_COMMAND = ActionCommand(
    name="mltrack",
    help=_HELP,
    description=(
        "Experiment tracking inside Airflow: the `mltrack` command tree. Run `airflow mltrack` without "
        "arguments to list its commands and `airflow mltrack <command> --help` for one command. Commands "
        "that touch the store take --conn-id (default mltrack_default) or --url."
    ),
    func=run_mltrack,
    args=(ARG_MLTRACK_ARGS, ARG_MLTRACK_VERSION),
)


def get_cli_commands() -> list[CLICommand]:
    """The provider-info ``cli`` hook: the commands this provider adds to ``airflow``."""
    return [MLTRACK_COMMAND]
