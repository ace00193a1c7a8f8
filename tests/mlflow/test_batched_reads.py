"""The MLflow adapter reads a page of runs in a few batched queries (``store/reads/mlflow_runs.py``) and a
``log_batch`` costs a few statements: the same answers as run-by-run reads, at a bounded statement count."""

from __future__ import annotations

import json
import math
import time

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, ViewType
from mlflow.utils.proto_json_utils import message_to_json

from airflow_mltrack.mlflow.rest_handlers import _run_json, _run_proto
from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.reads.mlflow_runs import dataset_records, experiment_rows, run_records
from tests.support.statements import statements as counted


def _runs(client: MlflowClient, experiment_id: str, n: int) -> list[str]:
    """``n`` runs with params, tags, metrics on two splits and a dataset input (every third)."""
    ids = []
    for i in range(n):
        run = client.create_run(experiment_id, run_name=f"r{i}", tags={"team": f"t{i % 2}"})
        rid = run.info.run_id
        client.log_batch(
            rid,
            metrics=[Metric("validation_acc", i / n, 0, 1), Metric("train_loss", 1 - i / n, 0, 1)],
        )
        client.log_param(rid, "lr", str(0.1 * i))
        if i % 3 == 0:
            context = [InputTag("mlflow.data.context", "train")]
            client.log_inputs(rid, datasets=[DatasetInput(Dataset(f"d{i}", f"v{i}", "code", "{}"), context)])
        ids.append(rid)
    return ids


def test_run_records_match_the_run_by_run_reads(mlflow_uri, tracking_url):
    client = MlflowClient()
    exp = client.create_experiment("batched")
    ids = [int(i) for i in _runs(client, exp, 7)]
    store = TrackingStore.from_url(tracking_url)
    records = run_records(store, [*reversed(ids), 999_999])
    assert list(records) == list(reversed(ids))  # the order asked; a missing id is absent
    for i in ids:
        one = store.get_experiment(i)
        one.pop("tags")
        assert records[i]["row"] == one
        assert records[i]["tags"] == store.tag_values("experiment", i)
        shown = ("name", "evaluation_set", "step", "value")  # what a Run shows of each final value
        assert records[i]["latest"] == [{k: x[k] for k in shown} for x in store.latest_metrics(i)]
        assert experiment_rows(store, [i])[i] == one
    given = [records[i]["row"] for i in ids[:3]]
    assert run_records(store, ids, given) == records  # known rows are used as they are
    found = dataset_records(store, [records[i]["row"]["dataset_id"] for i in ids] + [999_999])
    for dataset_id, record in found.items():
        assert record["row"] == store.get_dataset(dataset_id)
        assert record["tags"] == store.tag_values("dataset", dataset_id)
    assert 999_999 not in found and dataset_records(store, []) == {}


def test_search_runs_reads_a_page_in_a_few_statements(mlflow_uri, tracking_url):
    client = MlflowClient()
    first, second = client.create_experiment("page-a"), client.create_experiment("page-b")
    ids = _runs(client, first, 24) + _runs(client, second, 6)
    adapter = mlflow.tracking._tracking_service.utils._get_store()
    filt, order = "metrics.validation_acc >= 0.1", ["metrics.validation_acc DESC"]
    with counted(adapter.tracking) as statements:
        page = client.search_runs([first], filt, order_by=order, max_results=20)
    assert len(page) == 20 and page.token
    assert len(statements) <= 14, statements  # not ~10 per run
    values = [r.data.metrics["validation_acc"] for r in page]
    assert values == sorted(values, reverse=True) and min(values) >= 0.1
    for run in page:  # each as get_run gives it: info, params, tags, metrics, inputs
        alone = client.get_run(run.info.run_id)
        assert run.to_dictionary() == alone.to_dictionary()
    assert any(r.inputs.dataset_inputs for r in page)
    rest = client.search_runs([first], filt, order_by=order, max_results=20, page_token=page.token)
    assert {r.info.run_id for r in page} | {r.info.run_id for r in rest} == {
        i for i, n in zip(ids[:24], range(24), strict=True) if n / 24 >= 0.1
    }
    client.log_batch(ids[0], metrics=[Metric("nan", math.nan, 0, 1), Metric("inf", -math.inf, 0, 2)])
    client.create_run(first, run_name="bare")
    client.set_terminated(ids[1], "KILLED")  # an end time and another status in the info
    entities = client.search_runs([first], max_results=30)
    adapter.render_run = _run_json  # as the REST search does: each run's JSON straight from its parts
    try:
        rendered = adapter.search_runs([first], "", ViewType.ACTIVE_ONLY, 30)
    finally:
        adapter.render_run = None
    assert len(rendered) == len(entities) == 25  # 24 and "bare"
    for run, found in zip(entities, rendered, strict=True):  # the REST JSON, built as protobuf prints it
        assert found == json.loads(message_to_json(_run_proto(run), pretty=False))
    both = client.search_runs([first, second], "params.lr = '0.0'", max_results=50)
    assert sorted(r.info.experiment_id for r in both) == sorted([first, second])


@pytest.mark.postgres
def test_log_batch_through_rest_is_three_statements(tracking_pg):
    from tests.reliability._support import mltrack_client, token
    from tests.support.airflow_db import migrate_once

    migrate_once()
    store = TrackingStore.from_url(tracking_pg)
    with mltrack_client(tracking_pg) as client:
        headers = {"Authorization": "Bearer " + token()}
        base = "/mltrack/mlflow/api/2.0/mlflow"
        made = client.post(base + "/runs/create", json={"experiment_id": "0"}, headers=headers)
        run_id = made.json()["run"]["info"]["run_id"]
        now = int(time.time() * 1000)
        body = {
            "run_id": run_id,
            "metrics": [{"key": f"val_m{i}", "value": i, "timestamp": now, "step": 2} for i in range(10)],
        }
        client.post(base + "/runs/log-batch", json=body, headers=headers)  # the app's first request
        from airflow_mltrack.store.engine import get_engine

        served = TrackingStore.from_engine(get_engine(tracking_pg))
        with counted(served) as statements:
            newer = {**body, "metrics": [{**x, "step": 3} for x in body["metrics"]]}  # nothing overwritten
            answer = client.post(base + "/runs/log-batch", json=newer, headers=headers)
        assert answer.status_code == 200, answer.text
        # the run's row (auth + state), the metric rows, the metric_latest fold: no tag read (prefixed keys)
        assert len(statements) == 3, statements
        unprefixed = {**body, "metrics": [{"key": "acc", "value": 1, "timestamp": now, "step": 4}]}
        with counted(served) as statements:
            assert client.post(base + "/runs/log-batch", json=unprefixed, headers=headers).status_code == 200
        assert len(statements) == 4  # + the run's default-split tag
        client.post(base + "/runs/delete", json={"run_id": run_id}, headers=headers)
        refused = client.post(base + "/runs/log-batch", json=body, headers=headers)
        assert refused.status_code == 400 and "deleted" in refused.json()["message"]
    latest = {(x["name"], x["evaluation_set"]): x["value"] for x in store.latest_metrics(int(run_id))}
    assert latest[("val_m9", "validation")] == 9 and latest[("acc", "test")] == 1
