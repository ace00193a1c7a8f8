"""End to end in headless Chromium: a real ``airflow api-server`` with this plugin, signed in through the
real login page; the ML Tracking nav entry, an experiment with its uPlot charts, the compare view and the
DAG-run tab.

Needs ``/usr/bin/chromium`` (scripts/test.sh installs the Debian package) and the ``playwright`` Python
package (test extra). Screenshots go to ``test-artifacts/ui/``; see conftest.py for the shared server.
"""

from __future__ import annotations

import pytest

from tests.plugins.browser.conftest import (
    STEP_TIMEOUT_MS,
    _canvas_drawn,
    _direct_shot,
    _publish,
    _shot,
)
from tests.plugins.conftest import DEMO_DAG, DEMO_RUN, USERS

pytestmark = [pytest.mark.browser, pytest.mark.postgres]


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
        expect(frame.locator("#curves")).to_have_attribute("data-series", "2")  # both runs, one chart
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
