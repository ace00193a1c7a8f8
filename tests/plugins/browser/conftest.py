"""The browser harness: ONE real ``airflow api-server`` with this plugin and ONE headless Chromium for every
browser test of the session (each test module opens its own contexts; starting a server costs ~40 s).

The server reads a seeded PostgreSQL tracking database (``browser_pg``: (url, ids) of
``tests.plugins.conftest.seed``); a test that needs more rows writes them through
``TrackingStore.from_url(url)`` (the server reads live). Use :func:`sign_in` for a signed-in context,
:func:`shot` / :func:`publish` for screenshots, :func:`canvas_drawn` to check that a chart was drawn.

Needs ``/usr/bin/chromium`` (scripts/test.sh installs the Debian package) and the ``playwright`` Python
package (test extra); the browser bundled by ``playwright install`` is never used. Screenshots go to
``test-artifacts/ui/``; the experiment and compare ones are copied to ``docs/screenshots/`` when missing
there (or with ``MLTRACK_UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.plugins.conftest import DEMO_DAG, DEMO_RUN, USERS, auth_env, seed

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "ui"
DOC_SHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SERVER_START_TIMEOUT = 150
STEP_TIMEOUT_MS = 30_000

DEMO_DAG_FILE = f'''
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("{DEMO_DAG}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    EmptyOperator(task_id="train_baseline") >> EmptyOperator(task_id="train_tuned")
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _airflow(env: dict[str, str], *args: str, timeout: int = 300) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    pytest.fail(f"airflow api-server not healthy after {SERVER_START_TIMEOUT}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def browser_pg(pg_server, pg_template):
    """The PostgreSQL tracking database the browser tests' server reads, seeded once: (url, ids)."""
    import uuid

    from airflow_mltrack.store.engine import dispose_engines

    name = f"browser_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    ids = seed(url)
    dispose_engines()
    yield url, ids
    dispose_engines()


@pytest.fixture(scope="session")
def seeded_pg(browser_pg):
    """The browser tests' name for :func:`browser_pg` (the same database, for the whole session)."""
    return browser_pg


@pytest.fixture(scope="session")
def airflow_server(tmp_path_factory, browser_pg):
    """A real ``airflow api-server`` on a free loopback port with a demo DAG run; yields its base URL."""
    url, _ = browser_pg
    home = tmp_path_factory.mktemp("ui-browser-home")
    dags = home / "dags"
    dags.mkdir()
    (dags / "mltrack_ui_demo.py").write_text(DEMO_DAG_FILE)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(auth_env(home))
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
                [
                    {
                        "name": "dags-folder",
                        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                        "kwargs": {"path": str(dags), "refresh_interval": 0},
                    }
                ]
            ),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__EXPOSE_CONFIG": "False",
            "AIRFLOW_CONN_MLTRACK_DEFAULT": json.dumps({"conn_type": "mltrack", "extra": {"url": url}}),
        }
    )
    started = time.perf_counter()
    _airflow(env, "db", "migrate")
    _airflow(env, "dags", "reserialize")
    _airflow(env, "dags", "trigger", DEMO_DAG, "--run-id", DEMO_RUN)
    print(f"airflow setup (migrate, reserialize, trigger): {time.perf_counter() - started:.1f}s")
    log = home / "api-server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = time.perf_counter()
        _wait_healthy(base, proc, log)
        print(f"api-server healthy after {time.perf_counter() - started:.1f}s")
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, ARTIFACTS / "api-server.log")


@pytest.fixture(scope="session")
def browser():
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does it: apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def sign_in(browser, base: str, user: str = "admin", viewport: tuple[int, int] = (1440, 1000)):
    """A new browser context signed in as ``user`` (one of ``USERS``) through Airflow's real login page;
    returns (context, page) with the page on the Airflow home page."""
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, color_scheme="light"
    )
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{base}/")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name='username']").fill(user)
    page.locator("input[name='password']").fill(USERS[user][1])
    page.locator("button[type='submit']").click()
    page.wait_for_url(lambda u: "/auth/login" not in u)
    return context, page


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _direct_shot(context, url: str, name: str) -> Path:
    """The page opened directly at /mltrack/... (the signed-in cookie suffices), whole page, charts drawn."""
    from playwright.sync_api import expect

    page = context.new_page()
    try:
        page.goto(url)
        expect(page.locator(".uplot canvas").first).to_be_visible()
        return _shot(page, name)
    finally:
        page.close()


def _publish(path: Path) -> None:
    target = DOC_SHOTS / path.name
    if not target.exists() or os.environ.get("MLTRACK_UPDATE_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


def _canvas_drawn(frame) -> bool:
    """Whether some uPlot canvas has non-transparent pixels (a line was drawn)."""
    return frame.locator(".uplot canvas").first.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  for (let i = 3; i < d.length; i += 4) { if (d[i] !== 0) return true; } return false; }"""
    )


def remove_project(store, project: str) -> None:
    """Every row of ``project`` deleted (the store has no delete API: a test-only cleanup). Tests that add
    many rows to the shared database remove them, so the next module sees the seeded list."""
    from sqlalchemy import delete, select

    from airflow_mltrack.store import tables as t

    with store.write() as conn:
        pid = conn.execute(select(t.projects.c.project_id).where(t.projects.c.name == project)).scalar_one()
        exp_ids = select(t.experiments.c.experiment_id).where(t.experiments.c.project_id == pid)
        model_ids = select(t.models.c.model_id).where(t.models.c.project_id == pid)
        conn.execute(delete(t.experiment_tasks).where(t.experiment_tasks.c.experiment_id.in_(exp_ids)))
        conn.execute(delete(t.metric_latest).where(t.metric_latest.c.experiment_id.in_(exp_ids)))
        conn.execute(delete(t.metrics).where(t.metrics.c.experiment_id.in_(exp_ids)))
        conn.execute(delete(t.experiments).where(t.experiments.c.project_id == pid))
        conn.execute(delete(t.endpoint_models).where(t.endpoint_models.c.model_id.in_(model_ids)))
        conn.execute(delete(t.deployment_endpoints).where(t.deployment_endpoints.c.project_id == pid))
        conn.execute(delete(t.preprocessing_jobs).where(t.preprocessing_jobs.c.project_id == pid))
        conn.execute(delete(t.datasets).where(t.datasets.c.project_id == pid))
        conn.execute(delete(t.models).where(t.models.c.project_id == pid))
        conn.execute(delete(t.projects).where(t.projects.c.project_id == pid))


shot = _shot
publish = _publish
canvas_drawn = _canvas_drawn
direct_shot = _direct_shot
