"""Issue 14's "done when", as a user runs it: one unmodified MLflow training script
(``examples/train_iris.py``: ``mlflow.sklearn.autolog()``, a tag, a metric, a text artifact)

- as a task of a DAG run by a real scheduler (LocalExecutor worker; the worker's environment has
  ``MLFLOW_TRACKING_URI=mltrack://``, nothing else), and
- from outside Airflow, in a plain process with only ``MLFLOW_TRACKING_URI=http://<api-server>/mltrack/mlflow``
  and ``MLFLOW_TRACKING_TOKEN`` (a token from ``POST /auth/token``),

both into one PostgreSQL tracking store; then our UI (the real api-server) shows both runs with their
params, metrics, tags, dataset, logged model and artifacts, the first one linked to its task instance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.vocabulary import PLACEHOLDER_DATASET
from tests.support.airflow_cluster import AirflowCluster

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parents[1] / "examples" / "train_iris.py"
# The client calls a user makes beside logging: search with a filter, metric history, an MLflow error.
CLIENT_SCRIPT = textwrap.dedent(
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow.set_experiment("rest-cluster")
    with mlflow.start_run(run_name="outside") as run:
        mlflow.log_params({"lr": "0.01", "layers": "3"})
        for step, loss in enumerate((0.9, 0.5, 0.3)):
            mlflow.log_metric("val_loss", loss, step=step)
        mlflow.set_tag("team", "growth")
    client = MlflowClient()
    found = client.search_runs([run.info.experiment_id], "metrics.val_loss < 0.5", order_by=["start_time DESC"])
    assert [r.info.run_id for r in found] == [run.info.run_id], found
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0.9, 0.5, 0.3]
    try:
        client.get_run("999999")
    except MlflowException as exc:
        assert exc.error_code == "RESOURCE_DOES_NOT_EXIST", exc.error_code
    else:
        raise AssertionError("get_run of an unknown run did not raise")
    print(client.get_run(run.info.run_id).info.artifact_uri)
    print(run.info.run_id)
    """
)


def _token(cluster: AirflowCluster) -> str:
    passwords = json.loads((cluster.home / "simple_auth_manager_passwords.json.generated").read_text())
    answer = httpx.post(
        f"http://127.0.0.1:{cluster.port}/auth/token",
        json={"username": "admin", "password": passwords["admin"]},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["access_token"]


def _check_run(store: TrackingStore, experiment_id: int) -> dict:
    """What both runs must carry: autolog's params and metrics, the script's tag, metric and artifact, a real
    dataset and the logged model."""
    experiment = store.get_experiment(experiment_id)
    params = experiment["hyperparameters"]
    assert params["C"] == 0.5 and params["max_iter"] == 300, params
    latest = {(m["name"], m["evaluation_set"]) for m in store.latest_metrics(experiment_id)}
    assert ("val_accuracy", "validation") in latest, latest
    assert any(name.startswith("training_") for name, _ in latest), latest
    assert store.tag_values("experiment", experiment_id).get("team") == "growth"
    assert store.get_dataset(experiment["dataset_id"])["name"] != PLACEHOLDER_DATASET
    model = store.get_model(experiment["model_id"])
    assert model["framework"] != "unknown", model
    paths = {a["path"] for a in store.list_artifacts(experiment_id)}
    assert "notes/summary.txt" in paths, paths
    return experiment


def test_one_mlflow_script_in_a_dag_and_from_outside(tracking_pg, tmp_path):
    store = TrackingStore.from_url(tracking_pg)
    cluster = AirflowCluster(
        tmp_path,
        HERE / "e2e_dags",
        tracking_pg,
        secret="mltrack-mlflow-e2e-secret",
        extra_env={
            "MLFLOW_TRACKING_URI": "mltrack://",
            "AIRFLOW__MLTRACK__ARTIFACT_ROOT": f"file://{tmp_path / 'artifacts'}",
        },
    )
    with cluster:
        deadline = time.monotonic() + 420
        cluster.wait("the API server", cluster.healthy, deadline)
        cluster.wait(
            "the DAG to be parsed",
            lambda: cluster.airflow("dags", "trigger", "mlflow_script").returncode == 0,
            deadline,
        )

        def in_task() -> list[dict]:
            return [e for e in store.find_experiments(dag_id="mlflow_script") if e["status"] == "Completed"]

        cluster.wait("the task's MLflow run to be Completed", lambda: bool(in_task()), deadline)
        token = _token(cluster)
        base = f"http://127.0.0.1:{cluster.port}"
        outside_env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "MLFLOW_TRACKING_URI": f"{base}/mltrack/mlflow",
            "MLFLOW_TRACKING_TOKEN": token,
        }
        outside = subprocess.run(
            [sys.executable, str(SCRIPT)], env=outside_env, capture_output=True, text=True, timeout=300
        )
        assert outside.returncode == 0, outside.stderr[-4000:]
        outside_id = int(outside.stdout.strip().splitlines()[-1])

        (task_run,) = in_task()
        linked = _check_run(store, task_run["experiment_id"])
        assert (linked["dag_id"], linked["task_id"], linked["map_index"]) == ("mlflow_script", "train", -1)
        free = _check_run(store, outside_id)
        assert free["dag_id"] is None and free["project_id"] == linked["project_id"]

        client = tmp_path / "client.py"
        client.write_text(CLIENT_SCRIPT)
        done = subprocess.run(
            [sys.executable, str(client)], env=outside_env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-4000:] + cluster.log_tails()
        artifact_uri, run_id = done.stdout.strip().splitlines()[-2:]
        row = store.get_experiment(int(run_id))
        assert (row["name"], row["project"], row["status"], row["dag_id"]) == (
            "outside",
            "rest-cluster",
            "Completed",
            None,
        )
        assert row["hyperparameters"] == {"lr": 0.01, "layers": 3}
        assert [p["value"] for p in store.metric_history(int(run_id), "val_loss", "validation")] == [
            0.9,
            0.5,
            0.3,
        ]
        assert artifact_uri == f"mlflow-artifacts:/{row['project_id']}/{run_id}/artifacts"

        headers = {"Authorization": f"Bearer {token}"}
        for experiment_id in (task_run["experiment_id"], outside_id):
            page = httpx.get(f"{base}/mltrack/experiments/{experiment_id}", headers=headers, timeout=30)
            assert page.status_code == 200, page.text[:500]
            for shown in ("val_accuracy", "growth", "notes/summary.txt", "MLmodel"):
                assert shown in page.text, (shown, experiment_id)
        anonymous = httpx.get(
            f"{base}/mltrack/mlflow/api/2.0/mlflow/experiments/get-by-name?experiment_name=iris"
        )
        assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"
