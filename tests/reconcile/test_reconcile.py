"""Reconcile XCom metrics into the tracking store, on a real Airflow metadata DB and a real PostgreSQL.

The source DAG (``dags/mltrack_bf_source.py``) never used airflow-mltrack: its task only returns metrics.
It runs for several days with ``dag.test`` (XComs in the metadata DB, no tracking rows); then the
``BackfillMetricsOperator`` imports them from inside a task (Task SDK path), and the ``mltrack backfill``
CLI does the same from outside (REST API on the in-process API app; metadata-DB fallback).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from airflow_mltrack.store.reads import metric_curves as q
from tests.reconcile.conftest import DAYS, load_dag, run_summary
from tests.reconcile.dags.mltrack_bf_source import MALFORMED_DAY, START, metrics_for

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]


def _snapshot(store):
    """Every experiment of the source with its metric rows (comparable across calls)."""
    out = {}
    for exp in store.find_experiments(dag_id="mltrack_bf_source", task_id="evaluate"):
        curves = store.metric_curves([exp["experiment_id"]])
        out[exp["run_id"]] = (
            exp["experiment_id"],
            exp["map_index"],
            sorted((r["name"], r["step"], r["evaluation_set"], r["value"]) for r in curves),
        )
    return out


def _expected_rows(day):
    payload = metrics_for(day)
    rows = [("accuracy", None, "test", payload["accuracy"])]
    rows += [("loss", i, "test", v) for i, v in enumerate(payload["loss"])]
    return sorted(rows)


def _check_imported(store, source_runs):
    snap = _snapshot(store)
    good = {run_id: day for run_id, day in source_runs.items() if day != MALFORMED_DAY}
    assert set(snap) == set(good)
    for run_id, day in good.items():
        assert snap[run_id][1] == -1
        assert snap[run_id][2] == _expected_rows(day)
    return snap


def test_operator_imports_xcom_metrics_idempotently(airflow_db, source_runs, tracking):
    reconcile = load_dag(airflow_db, "mltrack_bf_reconcile")
    assert _snapshot(tracking) == {}

    dr = reconcile.test(logical_date=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    assert dr.state == "success"
    snap = _check_imported(tracking, source_runs)
    # The placeholder catalog entries, once per source.
    assert [m["name"] for m in tracking.list_models("bf-test")] == ["mltrack_bf_source.evaluate"]
    assert [d["data_type"] for d in tracking.list_datasets("bf-test")] == ["Other"]

    summary = run_summary(dr)
    assert (summary["imported"], summary["already_present"], summary["skipped"]) == (DAYS - 1, 0, 1)
    assert summary["skipped_runs"][0]["run_id"] == _run_of(source_runs, MALFORMED_DAY)
    assert "malformed payload" in summary["skipped_runs"][0]["reason"]
    assert "xcom[return_value].accuracy" in summary["skipped_runs"][0]["reason"]

    dr = reconcile.test(logical_date=dt.datetime(2026, 2, 2, tzinfo=dt.UTC))
    assert dr.state == "success"
    assert _snapshot(tracking) == snap
    summary = run_summary(dr)
    assert (summary["imported"], summary["already_present"], summary["skipped"]) == (0, DAYS - 1, 1)


def _run_of(runs, day):
    return next(run_id for run_id, d in runs.items() if d == day)


def test_reconciler_imports_into_existing_experiment_and_verify(airflow_db, source_runs, tracking):
    """A run whose experiment exists (e.g. the tracking DB was down after creation) gets its metrics there."""
    from airflow_mltrack.reconcile import MetadataDBRunSource, Reconciler, SourceSpec

    run_id = _run_of(source_runs, 0)
    tracking.ensure_project("bf-test")
    model = tracking.register_model("bf-test", "real-model", "sklearn")
    data = tracking.register_dataset("bf-test", "real-data", "Tabular")
    existing = tracking.create_experiment(
        "bf-test", "train-run", model, data, dag_id="mltrack_bf_source", run_id=run_id, task_id="evaluate"
    )
    spec = SourceSpec(
        dag_id="mltrack_bf_source", task_id="evaluate", project="bf-test", model_id=model, dataset_id=data
    )
    reconciler = Reconciler(MetadataDBRunSource(), tracking)
    report = reconciler.reconcile([spec], START, START + dt.timedelta(days=2))
    assert [(o.run_id, o.outcome) for o in report.outcomes] == [
        (run_id, "imported"),
        (_run_of(source_runs, 1), "imported"),
    ]
    assert report.outcomes[0].experiment_id == existing
    assert tracking.get_experiment(report.outcomes[1].experiment_id)["model_id"] == model  # given ids used

    # verify=True reads the XCom again: values equal -> already present, nothing rewritten.
    before = q.stored_metric_values(tracking, existing)
    report = Reconciler(MetadataDBRunSource(), tracking, verify=True).reconcile(
        [spec], START, START + dt.timedelta(days=2)
    )
    assert [o.outcome for o in report.outcomes] == ["already present", "already present"]
    assert q.stored_metric_values(tracking, existing) == before


@pytest.fixture
def api_client(airflow_db, monkeypatch):
    """The public REST API app in-process (simple auth manager, every user admin) as an httpx client."""
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "backfill-test-secret-" + "x" * 64)
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app(apps="core"), base_url="http://testserver") as client:
        yield client


def test_cli_backfill_rest_api_then_resume(
    airflow_db, source_runs, tracking, pg_tracking_url, api_client, monkeypatch
):
    from airflow_mltrack.cli import backfill as cli_backfill
    from airflow_mltrack.cli import cli

    monkeypatch.setattr(cli_backfill, "_api_client_override", api_client)
    args = [
        "backfill",
        "--dag-id",
        "mltrack_bf_source",
        "--task-id",
        "evaluate",
        "--project",
        "bf-test",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-03",
        "--api-url",
        "http://testserver",
        "--url",
        pg_tracking_url,
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    first = _json_of(result.stdout)
    assert first["source"] == "rest-api"
    assert (first["imported"], first["already_present"], first["skipped"]) == (3, 0, 0)

    # The whole range: the first 3 days are detected as present (resume), day 3 is malformed.
    args[args.index("2026-01-03")] = "2026-01-05"
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    second = _json_of(result.stdout)
    assert (second["imported"], second["already_present"], second["skipped"]) == (1, 3, 1)
    _check_imported(tracking, source_runs)


def _json_of(stdout: str):
    """The --json summary (the in-process API app logs its requests to stdout before it)."""
    start = stdout.find("{") if stdout.startswith("{") else stdout.rfind("\n{\n") + 1
    return json.loads(stdout[start:])


def test_cli_backfill_metadata_db_fallback_table(airflow_db, source_runs, tracking, pg_tracking_url):
    from airflow_mltrack.cli import cli

    args = [
        "backfill",
        "--dag-id",
        "mltrack_bf_source",
        "--task-id",
        "evaluate",
        "--project",
        "bf-test",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-05",
        "--api-url",
        "http://127.0.0.1:9",
        "--url",
        pg_tracking_url,
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "falling back to the metadata database" in result.output
    assert "imported" in result.output and "malformed payload" in result.output
    _check_imported(tracking, source_runs)
    snap = _snapshot(tracking)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert _snapshot(tracking) == snap


def test_bad_sources_are_refused_naming_the_field():
    from airflow_mltrack import MLTrackError
    from airflow_mltrack.reconcile import parse_sources

    with pytest.raises(MLTrackError, match=r"sources\[0\]\.task_id"):
        parse_sources([{"dag_id": "a", "project": "p"}])
    with pytest.raises(MLTrackError, match=r"sources\[1\]\.evaluation_set"):
        parse_sources(
            [
                {"dag_id": "a", "task_id": "t", "project": "p"},
                {"dag_id": "a", "task_id": "t", "project": "p", "evaluation_set": "nope"},
            ]
        )
    with pytest.raises(MLTrackError, match=r"model_id"):
        parse_sources({"dag_id": "a", "task_id": "t", "project": "p", "model_id": 3})
