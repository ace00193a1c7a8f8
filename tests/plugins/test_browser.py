"""End to end in headless Chromium: a real ``airflow api-server`` with this plugin, signed in through the
real login page; the ML Tracking nav entry, an experiment with its uPlot charts, the compare view and the
DAG-run tab.

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

from tests.plugins.conftest import DEMO_DAG, DEMO_RUN, USERS, auth_env

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
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


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory, seeded_pg):
    """A real ``airflow api-server`` on a free loopback port with a demo DAG run; yields its base URL."""
    url, _ = seeded_pg
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


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does it: apt-get install chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


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
        expect(page.locator("#charts .uplot canvas").first).to_be_visible()
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


def test_signed_in_user_browses_ml_tracking(airflow_server, browser, seeded_pg):
    from playwright.sync_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_MS)  # a cold API server is slow on its first pages
    ids = seeded_pg[1]
    base = airflow_server
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, color_scheme="light")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    try:
        # Anonymous: the app answers 401, not the UI's catch-all index.html.
        anonymous = page.request.get(f"{base}/mltrack/api/experiments")
        assert anonymous.status == 401

        # Sign in through the real login page.
        page.goto(f"{base}/")
        page.wait_for_url("**/auth/login**")
        username, password = "admin", USERS["admin"][1]
        page.locator("input[name='username']").fill(username)
        page.locator("input[name='password']").fill(password)
        page.locator("button[type='submit']").click()
        page.wait_for_url(lambda u: "/auth/login" not in u)
        assert any(c["name"] == "_token" for c in context.cookies())

        # "ML Tracking" from the Airflow nav opens the experiments page in the plugin iframe.
        page.get_by_role("link", name="ML Tracking").first.click()
        page.wait_for_url("**/plugin/mltrack")
        frame = page.frame_locator("iframe").first
        expect(frame.locator("h1")).to_have_text("Experiments")
        expect(frame.get_by_role("link", name="baseline", exact=True)).to_be_visible()
        _shot(page, "01-experiments")

        # An experiment: metadata, metric table and drawn uPlot charts.
        frame.get_by_role("link", name="baseline", exact=True).click()
        expect(frame.locator("h1")).to_contain_text("baseline")
        expect(frame.locator("#metric-table")).to_contain_text("accuracy")
        expect(frame.locator("#charts .uplot canvas").first).to_be_visible()
        expect(frame.locator("#charts")).to_have_attribute("data-charts", "1")
        assert _canvas_drawn(frame.locator("body"))
        expect(frame.get_by_role("link", name=DEMO_RUN)).to_have_attribute(
            "href", f"../../dags/{DEMO_DAG}/runs/{DEMO_RUN}"
        )
        _shot(page, "experiment-in-airflow")
        _publish(_direct_shot(context, f"{base}/mltrack/experiments/{ids['baseline']}", "experiment"))

        # Compare two experiments, ticked in the list.
        frame.get_by_role("link", name="Experiments", exact=True).first.click()
        expect(frame.locator("h1")).to_have_text("Experiments")
        frame.locator(f"input[name='ids'][value='{ids['baseline']}']").check()
        frame.locator(f"input[name='ids'][value='{ids['tuned']}']").check()
        frame.get_by_role("button", name="Compare selected").click()
        expect(frame.locator("h1")).to_have_text("Compare 2 experiments")
        expect(frame.locator("#param-table tr.diff")).to_contain_text("learning_rate")
        expect(frame.locator("#charts")).to_have_attribute("data-charts", "2")
        assert _canvas_drawn(frame.locator("body"))
        _shot(page, "compare-in-airflow")
        _publish(
            _direct_shot(context, f"{base}/mltrack/compare?ids={ids['baseline']},{ids['tuned']}", "compare")
        )

        # The DAG-run tab lists the run's experiments.
        page.goto(f"{base}/dags/{DEMO_DAG}/runs/{DEMO_RUN}")
        # The tab bar may also render hidden copies of its links (overflow menu): take a visible one.
        tab = page.locator("a[href*='plugin/mltrack-run']:visible").filter(has_text="Experiments").first
        expect(tab).to_be_visible()
        tab.click()
        page.wait_for_url(f"**/dags/{DEMO_DAG}/runs/{DEMO_RUN}/plugin/mltrack-run")
        frame = page.frame_locator("iframe").first
        expect(frame.locator("h1")).to_contain_text(DEMO_RUN)
        expect(frame.get_by_role("link", name="tuned", exact=True)).to_be_visible()
        _shot(page, "dag-run-tab")
    except Exception:
        _shot(page, "failure")
        raise
    finally:
        context.close()
    assert not [e for e in console_errors if "mltrack" in e.lower()], console_errors
