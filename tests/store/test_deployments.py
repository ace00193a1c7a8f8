"""Traffic splits as users drive them (canaries, promotions, two DAGs on one endpoint), on both backends:
exact allocation, the rollout kind of every history row, and the below-100 % warning."""

from __future__ import annotations

import json
import logging
import random

import pytest
from click.testing import CliRunner

from airflow_mltrack.cli import cli
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.deployments import TRAFFIC_TOLERANCE
from airflow_mltrack.store.introspect import integrity_report


def _integrity(store: TrackingStore) -> dict[str, int]:
    return {
        row["kind"]: row["count"]
        for row in integrity_report(store.engine)
        if row["kind"].startswith("traffic")
    }


def _active_sum(store: TrackingStore, endpoint: str = "prod") -> float:
    return sum(r["traffic_percentage"] for r in store.endpoint_state("churn", endpoint))


def test_canary_of_a_third_keeps_the_endpoint_at_exactly_100(store: TrackingStore, tracking_url: str):
    incumbent = store.register_model("churn", "xgb", "xgboost", version="1")
    challenger = store.register_model("churn", "xgb", "xgboost", version="2")
    store.deploy_model("churn", "prod", incumbent, 100)
    store.deploy_model("churn", "prod", challenger, 33.3333333)
    assert _active_sum(store) <= 100 + TRAFFIC_TOLERANCE
    assert _integrity(store) == {"traffic": 0, "traffic_below": 0}
    result = CliRunner().invoke(cli, ["integrity", "--url", tracking_url])
    assert result.exit_code == 0, result.output
    assert "No problems" in result.output


def test_many_deploys_of_awkward_shares_never_pass_100(store: TrackingStore):
    """The shares a sweep of DAG runs would pick (thirds, sevenths, tiny canaries), many times over."""
    models = [store.register_model("churn", "xgb", "xgboost", version=str(i)) for i in range(7)]
    rng = random.Random(11)
    shares = [100, 100 / 3, 100 / 7, 33.3333333, 14.2857142857, 0.000001, 99.9999995, 50, 12.5, 66.6666667]
    for _ in range(300):
        store.deploy_model("churn", "prod", rng.choice(models), rng.choice(shares))
        assert _active_sum(store) <= 100 + TRAFFIC_TOLERANCE
    assert _integrity(store)["traffic"] == 0


def test_rollout_history_records_each_kind(store: TrackingStore):
    v1, v2, v3 = (store.register_model("churn", "xgb", "xgboost", version=str(i)) for i in (1, 2, 3))
    assert store.deploy("churn", "prod", v1, 100).kind == "deploy"
    assert store.deploy("churn", "prod", v2, 10).kind == "canary"
    assert store.deploy("churn", "prod", v2, 25).kind == "adjust"
    assert store.deploy("churn", "prod", v2, 100).kind == "promote"  # v1 retired (scaled to 0)
    assert store.deploy("churn", "prod", v1, 100).kind == "rollback"
    assert store.deploy("churn", "prod", v3, 100).kind == "promote"  # straight to 100 beside v1
    history = [
        (r["model_id"], r["traffic_percentage"], r["kind"]) for r in store.endpoint_history("churn", "prod")
    ]
    assert history == [
        (v1, 100, "deploy"),
        (v1, 90, "adjust"),
        (v2, 10, "canary"),
        (v1, 75, "adjust"),
        (v2, 25, "adjust"),
        (v2, 100, "promote"),
        (v1, 100, "rollback"),
        (v3, 100, "promote"),
    ]
    again = store.deploy("churn", "prod", v3, 100)  # the same call again: the same row, the same kind
    (active,) = store.endpoint_state("churn", "prod")
    assert (again.endpoint_model_id, again.kind) == (active["endpoint_model_id"], "promote")


def test_two_dags_deploying_one_model_warn_that_the_endpoint_serves_30(
    store: TrackingStore, tracking_url: str, caplog
):
    """DAG A ships the model at 70 %, DAG B (written by someone else) at 30 %: one model at 30 % is left."""
    model = store.register_model("churn", "xgb", "xgboost", version="1")
    first = store.deploy("churn", "prod", model, 70, dag_id="ship_a", run_id="scheduled__2026-01-01")
    assert first.warning is not None and "70" in first.warning
    caplog.set_level(logging.WARNING, logger="airflow_mltrack.store.deployments")
    second = store.deploy("churn", "prod", model, 30, dag_id="ship_b", run_id="scheduled__2026-01-01")
    assert second.active_traffic == 30
    assert second.warning is not None and "'prod'" in second.warning and "30 %" in second.warning
    assert second.warning in caplog.text
    assert _integrity(store) == {"traffic": 0, "traffic_below": 1}

    runner = CliRunner()
    result = runner.invoke(cli, ["integrity", "--url", tracking_url])
    assert result.exit_code == 0, result.output  # a warning, not a problem
    assert "No problems" in result.output and "1 warning(s)" in result.output
    report = json.loads(runner.invoke(cli, ["integrity", "--url", tracking_url, "--json"]).output)
    (below,) = [r for r in report if r["kind"] == "traffic_below"]
    assert (below["severity"], below["count"]) == ("warning", 1)

    full = store.deploy("churn", "prod", model, 100)
    assert (full.kind, full.warning, full.active_traffic) == ("promote", None, 100)
    assert _integrity(store)["traffic_below"] == 0


def test_a_share_finer_than_the_scale_is_refused(store: TrackingStore):
    from airflow_mltrack import MLTrackError

    model = store.register_model("churn", "xgb", "xgboost")
    with pytest.raises(MLTrackError, match=r"traffic_percentage=1e-08: must be 0 or at least 1e-06"):
        store.deploy_model("churn", "prod", model, 1e-8)
    assert store.list_endpoints("churn") == []
