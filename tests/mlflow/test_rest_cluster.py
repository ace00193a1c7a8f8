"""The MLflow REST protocol on a REAL ``airflow api-server`` (plugin mounted by Airflow at ``/mltrack``):
an unmodified MLflow script in a plain subprocess with only ``MLFLOW_TRACKING_URI`` and
``MLFLOW_TRACKING_TOKEN`` (a token from ``POST /auth/token``) writes into the PostgreSQL tracking store."""

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
from tests.support.airflow_cluster import AirflowCluster

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

SCRIPT = textwrap.dedent(
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
    found = client.search_runs([run.info.experiment_id], "metrics.val_loss < 0.5", order_by=["attributes.start_time DESC"])
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


def test_unmodified_mlflow_script_against_a_real_api_server(tracking_pg, tmp_path: Path):
    dags = tmp_path / "dags"
    dags.mkdir()
    cluster = AirflowCluster(tmp_path, dags, tracking_pg, secret="mltrack-rest-cluster-secret")
    with cluster:
        deadline = time.monotonic() + 420
        cluster.wait("the API server", cluster.healthy, deadline)
        base = f"http://127.0.0.1:{cluster.port}"
        passwords = json.loads((cluster.home / "simple_auth_manager_passwords.json.generated").read_text())
        answer = httpx.post(
            f"{base}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30
        )
        assert answer.status_code in (200, 201), answer.text
        script = tmp_path / "train.py"
        script.write_text(SCRIPT)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "MLFLOW_TRACKING_URI": f"{base}/mltrack/mlflow",
            "MLFLOW_TRACKING_TOKEN": answer.json()["access_token"],
        }
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-4000:] + cluster.log_tails()
        artifact_uri, run_id = done.stdout.strip().splitlines()[-2:]
        anonymous = httpx.get(f"{base}/mltrack/mlflow/api/2.0/mlflow/runs/get", params={"run_id": run_id})
        assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"

    store = TrackingStore.from_url(tracking_pg)
    row = store.get_experiment(int(run_id))
    assert (row["name"], row["project"], row["status"], row["dag_id"]) == (
        "outside",
        "rest-cluster",
        "Completed",
        None,
    )
    assert row["hyperparameters"] == {"lr": 0.01, "layers": 3}
    assert store.tag_values("experiment", int(run_id))["team"] == "growth"
    assert [p["value"] for p in store.metric_history(int(run_id), "val_loss", "validation")] == [
        0.9,
        0.5,
        0.3,
    ]
    assert artifact_uri == f"mlflow-artifacts:/{row['project_id']}/{run_id}/artifacts"
