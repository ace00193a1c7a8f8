"""The demo's Airflow home: our DAGs only, and no catch-up nobody asked for, in any later shell."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from airflow_mltrack.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def test_demo_home_lists_our_dags_and_starts_no_catch_up(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    result = subprocess.run(  # noqa: S603 - the console script, as a user types it
        [str(Path(sys.executable).parent / "mltrack"), "demo", "--airflow-home", str(home), "--skip-failing"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cfg = (home / "airflow.cfg").read_text()
    # In the file, not only in the demo's environment: the UI runs in another shell.
    assert "\nload_examples = False\n" in cfg and "\nload_examples = True" not in cfg
    assert f"\ndags_folder = {ROOT / 'dags'}\n" in cfg
    with sqlite3.connect(home / "airflow.db") as db:
        paused = dict(db.execute("SELECT dag_id, is_paused FROM dag").fetchall())
        backfill_runs = db.execute("SELECT count(*) FROM dag_run WHERE dag_id = 'metric_backfill'").fetchone()
    assert set(paused) == {"train_evaluate_deploy", "failing_training", "metric_backfill"}
    assert paused["metric_backfill"] == 1  # catchup=True from 2026-01-01: only when the user unpauses it
    assert paused["train_evaluate_deploy"] == 0
    assert backfill_runs == (0,)
    flat = " ".join(result.stdout.split())
    assert f"AIRFLOW_HOME={home} bash {ROOT / 'scripts' / 'ui.sh'}" in flat
    assert f"password in {home / 'simple_auth_manager_passwords.json.generated'}" in flat


def test_config_only_fixes_a_home_made_by_an_older_demo(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "airflow.cfg").write_text(
        "[core]\n# Whether to load the DAG examples\nload_examples = True\n"
        "dags_are_paused_at_creation = False\nfernet_key = keep-me\n\n[api_auth]\njwt_secret = keep-me-too\n"
    )
    result = CliRunner().invoke(cli, ["demo", "--airflow-home", str(home), "--config-only"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(home)
    lines = (home / "airflow.cfg").read_text().splitlines()
    core = lines[: lines.index("[api_auth]")]
    assert "load_examples = False" in core and "load_examples = True" not in lines
    assert "dags_are_paused_at_creation = True" in core
    assert f"dags_folder = {ROOT / 'dags'}" in core
    assert "# Whether to load the DAG examples" in core and "fernet_key = keep-me" in core
    assert lines[lines.index("[api_auth]") + 1] == "jwt_secret = keep-me-too"
    assert sum(line.startswith("load_examples") for line in lines) == 1
