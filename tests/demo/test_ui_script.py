"""``bash scripts/ui.sh`` from a fresh shell (no venv on PATH): the UI answers, behind login, and stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 420  # a first start migrates Airflow's metadata database on 2 shared cores


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _marked(mark: str) -> list[int]:
    """Processes whose environment carries ``mark`` (everything ui.sh started, however deep)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if mark.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_ui_script_starts_airflow_from_a_fresh_shell_and_stops_everything(tmp_path: Path) -> None:
    home, port, mark = tmp_path / "airflow", _free_port(), uuid.uuid4().hex
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API__PORT": str(port),
        # Other test runs may hold the default log-server ports.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        "MLTRACK_UI_TEST_MARK": mark,
    }
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [
                "/usr/bin/env",
                "-i",
                *(f"{k}={v}" for k, v in env.items()),
                "bash",
                str(ROOT / "scripts" / "ui.sh"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        page = None
        with httpx.Client(base_url=base, timeout=10) as client:
            while time.monotonic() < deadline and proc.poll() is None:
                passwords = home / "simple_auth_manager_passwords.json.generated"
                try:
                    anonymous = client.get("/mltrack/projects")
                    token = client.post(
                        "/auth/token",
                        json={"username": "admin", "password": json.loads(passwords.read_text())["admin"]},
                    )
                    if token.status_code in (200, 201):
                        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                        page = client.get("/mltrack/projects", headers=headers)
                        if page.status_code == 200:
                            break
                except (httpx.HTTPError, OSError, ValueError, KeyError):
                    pass
                time.sleep(3)
        output = log.read_text(errors="replace")
        assert proc.poll() is None, f"scripts/ui.sh exited with {proc.returncode}:\n{output[-4000:]}"
        assert page is not None and page.status_code == 200, output[-4000:]
        assert anonymous.status_code in (401, 403), anonymous.text[:500]
        assert "Projects" in page.text, page.text[:500]
        assert f"http://localhost:{port}" in output and "simple_auth_manager_passwords.json" in output
        cfg = (home / "airflow.cfg").read_text()
        assert "\nload_examples = False" in cfg and f"\ndags_folder = {ROOT / 'dags'}" in cfg
        assert _marked(mark), "the marker should find the running components"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 143  # stopped by SIGTERM, after stopping its children
        assert _marked(mark) == [], "processes left after scripts/ui.sh stopped"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _marked(mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
