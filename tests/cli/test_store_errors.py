"""Every CLI command that cannot reach the tracking store says so in one line and exits non-zero."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from airflow_mltrack.cli import cli

PASSWORD = "s3cret-pw"  # noqa: S105 - a test value that must never be printed
UNREACHABLE = f"postgresql://nouser:{PASSWORD}@127.0.0.1:1/none"

COMMANDS = {
    "db upgrade": ["db", "upgrade"],
    "db downgrade": ["db", "downgrade", "base"],
    "db current": ["db", "current"],
    "db check": ["db", "check"],
    "erd": ["erd"],
    "integrity": ["integrity"],
    "backfill": [
        "backfill",
        *("--dag-id", "nightly_train", "--task-id", "evaluate", "--project", "churn"),
        *("--from", "2026-01-01", "--to", "2026-01-03", "--source", "metadata-db"),
    ],
}


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0, result.output
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert PASSWORD not in result.output
    return lines[0]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_unreachable_postgres_is_one_line(command: str) -> None:
    line = _one_line(CliRunner().invoke(cli, [*COMMANDS[command], "--url", UNREACHABLE]))
    assert "host 127.0.0.1, port 1" in line and "refused" in line.lower(), line
    assert "postgresql://nouser:***@127.0.0.1:1/none" in line


@pytest.mark.parametrize("command", list(COMMANDS))
def test_rejected_login_is_one_line(command: str, pg_server) -> None:
    """A real server that refuses the login (the role does not exist) names host, port and reason."""
    url = make_url(pg_server.url("postgres")).set(username="no_such_role", password=PASSWORD)
    line = _one_line(
        CliRunner().invoke(cli, [*COMMANDS[command], "--url", url.render_as_string(hide_password=False)])
    )
    assert f"host {url.host}, port {url.port}" in line, line
    assert 'role "no_such_role" does not exist' in line, line


@pytest.mark.parametrize("command", list(COMMANDS))
def test_sqlite_in_a_missing_directory_is_one_line(command: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    path = blocker / "sub" / "mltrack.db"
    line = _one_line(CliRunner().invoke(cli, [*COMMANDS[command], "--url", f"sqlite:///{path}"]))
    assert f"file {path}" in line and "Not a directory" in line, line


def test_demo_with_an_unreachable_store_fails_at_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLTRACK_DEFAULT", UNREACHABLE)
    result = CliRunner().invoke(cli, ["demo", "--airflow-home", str(tmp_path / "home")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0
    assert "host 127.0.0.1, port 1" in lines[-1] and PASSWORD not in result.output
    assert not (tmp_path / "home" / "airflow.db").exists()  # failed before migrating anything


def test_the_console_script_prints_one_line_and_debug_the_traceback() -> None:
    """As typed in a terminal: ``mltrack db upgrade --url postgresql://nouser@127.0.0.1:1/none``."""
    mltrack = Path(sys.executable).parent / "mltrack"
    url = "postgresql://nouser@127.0.0.1:1/none"
    plain = subprocess.run(  # noqa: S603
        [str(mltrack), "db", "upgrade", "--url", url], capture_output=True, text=True, check=False
    )
    assert plain.returncode == 1
    assert plain.stdout == ""
    assert plain.stderr.strip().splitlines() == [
        "Error: cannot connect to the tracking store postgresql://nouser@127.0.0.1:1/none "
        "(host 127.0.0.1, port 1): Connection refused"
    ]
    debug = subprocess.run(  # noqa: S603
        [str(mltrack), "db", "upgrade", "--url", url, "--debug"], capture_output=True, text=True, check=False
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "OperationalError" in debug.stderr
