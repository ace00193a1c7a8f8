"""Who may call the MLflow REST protocol, and MLflow-shaped errors: 401 without a token, 403 for a write with
only the UI cookie or without the DAG's edit right, a DAG the user may not read hides its runs; unknown and
unimplemented endpoints, bad input; the 501 without the mlflow package."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from airflow_mltrack.store import TrackingStore
from tests.plugins.conftest import dag_reader_headers
from tests.reliability._support import token

API = "/mltrack/mlflow/api/2.0/mlflow"


def _seed(url: str) -> dict[str, int]:
    store = TrackingStore.from_url(url)
    model = store.register_model("vision", "resnet", "PyTorch")
    data = store.register_dataset("vision", "cifar", "Image")
    ids = {
        "open": store.create_experiment(
            "vision", "open", model, data, dag_id="open_dag", run_id="r1", task_id="t"
        ),
        "hidden": store.create_experiment(
            "vision", "hidden", model, data, dag_id="hidden_dag", run_id="r1", task_id="t"
        ),
        "outside": store.create_experiment("vision", "outside", model, data),
    }
    for experiment_id in ids.values():
        store.set_status(experiment_id, "Running")
        store.log_metrics(experiment_id, {"accuracy": [0.5, 0.6]}, evaluation_set="test")
    return ids


def _error(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    return response.status_code, response.json()["error_code"]


def test_no_token_is_401_and_the_client_raises(rest, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    with pytest.raises(MlflowException) as exc:
        MlflowClient().search_experiments()
    assert exc.value.error_code == "UNAUTHENTICATED"
    with httpx.Client(base_url=rest.base) as http:
        assert _error(http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "x"})) == (
            401,
            "UNAUTHENTICATED",
        )
        assert _error(http.post(f"{API}/runs/create", json={})) == (401, "UNAUTHENTICATED")
        bad = http.get(
            f"{API}/runs/get", params={"run_id": "1"}, headers={"Authorization": "Bearer not-a-jwt"}
        )
        assert _error(bad) == (401, "UNAUTHENTICATED")
        expired = {"Authorization": f"Bearer {token('admin', 'admin', seconds=-10)}"}
        assert _error(http.get(f"{API}/runs/get", params={"run_id": "1"}, headers=expired)) == (
            401,
            "UNAUTHENTICATED",
        )


def test_cookie_reads_but_may_not_write(rest):
    ids = _seed(rest.tracking_url)
    with httpx.Client(base_url=rest.base, cookies={"_token": rest.token()}) as http:
        got = http.get(f"{API}/runs/get", params={"run_id": str(ids["outside"])})
        assert got.status_code == 200 and got.json()["run"]["info"]["run_name"] == "outside"
        refused = http.post(
            f"{API}/runs/set-tag", json={"run_id": str(ids["outside"]), "key": "k", "value": "v"}
        )
        assert _error(refused) == (403, "PERMISSION_DENIED")
        assert "Bearer" in refused.json()["message"]
    assert "k" not in TrackingStore.from_url(rest.tracking_url).tag_values("experiment", ids["outside"])


def test_unreadable_dag_hides_its_runs(rest, monkeypatch):
    ids = _seed(rest.tracking_url)
    headers = dag_reader_headers(monkeypatch, "open_dag")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", headers["Authorization"].removeprefix("Bearer "))
    client = MlflowClient()
    assert client.get_run(str(ids["open"])).info.run_name == "open"
    assert client.get_run(str(ids["outside"])).info.run_name == "outside"
    for read in (
        lambda: client.get_run(str(ids["hidden"])),
        lambda: client.get_metric_history(str(ids["hidden"]), "accuracy"),
    ):
        with pytest.raises(MlflowException) as exc:
            read()
        assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    bulk = httpx.get(  # the web UI's bulk history, outside the protos, hides it too
        f"{rest.uri}/ajax-api/2.0/mlflow/metrics/get-history-bulk",
        params={"run_id": [str(ids["open"]), str(ids["hidden"])], "metric_key": "accuracy"},
        headers=headers,
    )
    assert _error(bulk) == (404, "RESOURCE_DOES_NOT_EXIST")
    project = client.get_experiment_by_name("vision").experiment_id
    names = sorted(r.info.run_name for r in client.search_runs([project]))
    assert names == ["open", "outside"]
    with pytest.raises(MlflowException) as exc:  # not even a write reveals it
        client.set_tag(str(ids["hidden"]), "k", "v")
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # the viewer may read "open_dag" but not edit it, nor write runs outside Airflow
    for write in (
        lambda: client.log_metric(str(ids["open"]), "accuracy", 0.9),
        lambda: client.set_tag(str(ids["outside"]), "k", "v"),
        lambda: client.create_run(project),
        lambda: client.create_experiment("viewer-made"),
    ):
        with pytest.raises(MlflowException) as exc:
            write()
        assert exc.value.error_code == "PERMISSION_DENIED"
    store = TrackingStore.from_url(rest.tracking_url)
    assert [p["name"] for p in store.list_projects()] == ["vision"]
    assert {x["value"] for x in store.latest_metrics(ids["open"])} == {0.6}


def test_unreadable_dag_hides_its_logged_models(rest, monkeypatch):
    """search_logged_models lists no model a run of an unreadable DAG logged; its artifact listing and
    file download answer 404 as for an unknown model (a model without a run stays visible)."""
    ids = _seed(rest.tracking_url)
    admin = MlflowClient()
    project = admin.get_experiment_by_name("vision").experiment_id
    made = {
        name: admin.create_logged_model(project, name=name, source_run_id=source).model_id
        for name, source in (
            ("from-open", str(ids["open"])),
            ("from-hidden", str(ids["hidden"])),
            ("runless", None),
        )
    }
    every = sorted(m.name for m in admin.search_logged_models([project]))
    assert every == ["from-hidden", "from-open", "resnet", "runless"]  # resnet: the seeded model
    headers = dag_reader_headers(monkeypatch, "open_dag")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", headers["Authorization"].removeprefix("Bearer "))
    viewer = MlflowClient()
    seen = sorted(m.name for m in viewer.search_logged_models([project]))
    assert seen == ["from-open", "resnet", "runless"]
    names, token = [], None
    while True:  # page by page: the hidden one fills no page
        page = viewer.search_logged_models([project], max_results=1, page_token=token)
        names += [m.name for m in page]
        if not (token := page.token):
            break
    assert sorted(names) == seen
    with pytest.raises(MlflowException) as exc:
        viewer.get_logged_model(made["from-hidden"])
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    ajax = f"{rest.uri}/ajax-api/2.0/mlflow/logged-models"
    listing = httpx.get(f"{ajax}/{made['from-hidden']}/artifacts/directories", headers=headers)
    assert _error(listing) == (404, "RESOURCE_DOES_NOT_EXIST")
    download = httpx.get(
        f"{ajax}/{made['from-hidden']}/artifacts/files",
        params={"artifact_file_path": "MLmodel"},
        headers=headers,
    )
    assert _error(download) == (404, "RESOURCE_DOES_NOT_EXIST")
    visible = httpx.get(f"{ajax}/{made['runless']}/artifacts/directories", headers=headers)
    assert visible.status_code == 200 and visible.json().get("files", []) == []


def test_unreadable_dag_hides_its_dataset_summaries(rest, monkeypatch):
    """The web UI's search-datasets reads runs as search_runs does: datasets of hidden runs are not listed."""
    from mlflow.entities import Dataset, DatasetInput

    ids = _seed(rest.tracking_url)
    admin = MlflowClient()
    project = admin.get_experiment_by_name("vision").experiment_id
    for name in ("open", "hidden"):
        admin.log_inputs(str(ids[name]), [DatasetInput(Dataset(f"ds-{name}", "dg", "local", "src"))])
    url = f"{rest.uri}/ajax-api/2.0/mlflow/experiments/search-datasets"
    every = httpx.post(
        url, json={"experiment_ids": [project]}, headers={"Authorization": f"Bearer {rest.token()}"}
    )
    names = {d["name"] for d in every.json()["dataset_summaries"]}
    assert names == {"cifar", "ds-hidden", "ds-open"}  # cifar: the seeded runs' own dataset
    headers = dag_reader_headers(monkeypatch, "open_dag")
    seen = httpx.post(url, json={"experiment_ids": [project]}, headers=headers)
    assert {d["name"] for d in seen.json()["dataset_summaries"]} == {"cifar", "ds-open"}


def test_admin_writes_a_dag_linked_run(rest):
    client = MlflowClient()
    project = client.create_experiment("linked")
    tags = {"airflow.dag_id": "train_dag", "airflow.run_id": "manual_1", "airflow.task_id": "fit"}
    run = client.create_run(project, tags=tags)
    client.log_metric(run.info.run_id, "val_loss", 0.3, step=1)
    row = TrackingStore.from_url(rest.tracking_url).get_experiment(int(run.info.run_id))
    assert (row["dag_id"], row["run_id"], row["task_id"], row["name"]) == (
        "train_dag",
        "manual_1",
        "fit",
        "fit",
    )
    assert client.get_run(run.info.run_id).data.tags["airflow.dag_id"] == "train_dag"


def test_protocol_errors_are_mlflow_shaped(rest):
    ids = _seed(rest.tracking_url)
    auth = {"Authorization": f"Bearer {rest.token()}"}
    with httpx.Client(base_url=rest.base, headers=auth) as http:
        assert _error(http.get(f"{API}/no-such-thing")) == (404, "ENDPOINT_NOT_FOUND")
        wrong_method = http.get(f"{API}/runs/create")
        assert (
            _error(wrong_method) == (404, "ENDPOINT_NOT_FOUND") and "POST" in wrong_method.json()["message"]
        )
        assert _error(http.get("/mltrack/mlflow/api/2.0/mlflow/traces/tr-1/info")) == (501, "NOT_IMPLEMENTED")
        assert _error(http.get("/mltrack/mlflow/api/3.0/mlflow/traces/tr-1")) == (501, "NOT_IMPLEMENTED")
        ajax = http.get("/mltrack/mlflow/ajax-api/2.0/mlflow/runs/get", params={"run_id": str(ids["open"])})
        assert ajax.status_code == 200 and ajax.json()["run"]["info"]["run_id"] == str(ids["open"])
        missing = http.post(f"{API}/runs/log-metric", json={"run_id": str(ids["open"]), "key": "m"})
        assert _error(missing) == (400, "INVALID_PARAMETER_VALUE") and "'value'" in missing.json()["message"]
        not_json = http.post(
            f"{API}/runs/set-tag", content=b"{oops", headers={"Content-Type": "application/json"}
        )
        assert _error(not_json) == (400, "INVALID_PARAMETER_VALUE")
        form = http.post(f"{API}/runs/set-tag", content=b"run_id=1", headers={"Content-Type": "text/plain"})
        assert _error(form) == (400, "INVALID_PARAMETER_VALUE") and "Content-Type" in form.json()["message"]
        bad_type = http.post(
            f"{API}/runs/log-metric", json={"run_id": "1", "key": "m", "value": "x", "timestamp": 1}
        )
        assert _error(bad_type) == (400, "INVALID_PARAMETER_VALUE") and "value" in bad_type.json()["message"]
        nul = http.get(f"{API}/runs/get", params={"run_id": "1\x00"})
        assert _error(nul) == (400, "INVALID_PARAMETER_VALUE")
        run_ids = http.get(f"{API}/runs/get", params={"run_id": "not-a-run"})
        assert (  # as MLflow answers a run id it does not know: "Run 'not-a-run' not found"
            _error(run_ids) == (404, "RESOURCE_DOES_NOT_EXIST") and "not-a-run" in run_ids.json()["message"]
        )
        too_many = http.post(f"{API}/runs/search", json={"experiment_ids": ["1"], "max_results": 50001})
        assert _error(too_many) == (400, "INVALID_PARAMETER_VALUE")
        big = http.post(
            f"{API}/runs/log-batch",
            json={"run_id": str(ids["open"]), "tags": [{"key": "pad", "value": "x" * 1_100_000}]},
        )
        assert _error(big) == (400, "INVALID_PARAMETER_VALUE")
        headers = http.get(f"{API}/runs/get", params={"run_id": "999999"})
        assert _error(headers) == (404, "RESOURCE_DOES_NOT_EXIST")
        assert headers.headers["x-content-type-options"] == "nosniff"


def test_without_mlflow_the_routes_answer_501(rest):
    """A fresh interpreter where ``import mlflow`` fails: the app still imports and names the extra."""
    code = f"""
import sys
sys.modules["mlflow"] = None
import airflow_mltrack.plugins.app
from tests.reliability._support import mltrack_client, token
with mltrack_client({rest.tracking_url!r}) as client:
    answer = client.post("/mltrack/mlflow/api/2.0/mlflow/runs/create", json={{}},
                         headers={{"Authorization": "Bearer " + token()}})
    print(answer.status_code, answer.text)
    assert not any(name == "mlflow" or name.startswith("mlflow.") for name, mod in sys.modules.items() if mod)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status, _, body = done.stdout.strip().splitlines()[-1].partition(" ")
    assert status == "501"
    answer = json.loads(body)
    assert answer["error_code"] == "NOT_IMPLEMENTED" and "airflow-mltrack[mlflow]" in answer["message"]
