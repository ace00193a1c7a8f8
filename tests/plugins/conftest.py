"""Fixtures for the ML Tracking UI tests: a real Airflow auth manager (SimpleAuthManager with known users
and passwords), a migrated Airflow metadata database (the auth manager checks revoked tokens there) and a
seeded PostgreSQL tracking store reached as Airflow connection ``mltrack_default``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_db import migrate

USERS = {"admin": ("admin", "admin-secret-pw"), "viewer": ("viewer", "viewer-secret-pw")}
JWT_SECRET = "mltrack-ui-tests-jwt-secret-" + "0123456789abcdef" * 4
HIDDEN_DAG = "hidden_dag"
DEMO_DAG = "mltrack_ui_demo"
DEMO_RUN = "ui_run_1"
XSS_NAME = "<script>alert('xss')</script>"


def auth_env(home: str | os.PathLike[str]) -> dict[str, str]:
    """Airflow settings for SimpleAuthManager with the known test users (passwords written to a file)."""
    passwords = Path(home) / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({name: pw for name, (_, pw) in USERS.items()}))
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{role}" for n, (role, _) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def seed(url: str) -> dict[str, Any]:
    """A small but complete tracking store: lineage, curves, statuses, tags, a canary promotion."""
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(url)
    raw = store.register_dataset("vision", "cifar", "Image", num_records=60000, size_bytes=170_000_000)
    clean = store.register_dataset("vision", "cifar-normalized", "Image", version="2.0")
    store.record_preprocessing_job(
        "vision",
        "normalize",
        raw,
        clean,
        parameters={"mean": 0.5},
        dag_id=DEMO_DAG,
        run_id=DEMO_RUN,
        task_id="normalize",
    )
    v1 = store.register_model("vision", "resnet", "PyTorch", version="1", architecture="ResNet-18")
    v2 = store.register_model("vision", "resnet", "PyTorch", version="2", architecture="ResNet-50")
    ids: dict[str, Any] = {"raw": raw, "clean": clean, "v1": v1, "v2": v2}

    ids["baseline"] = store.create_experiment(
        "vision",
        "baseline",
        v1,
        clean,
        {"learning_rate": 0.1, "optimizer": "adam", "epochs": 5},
        dag_id=DEMO_DAG,
        run_id=DEMO_RUN,
        task_id="train_baseline",
        tags=["baseline"],
    )
    ids["tuned"] = store.create_experiment(
        "vision",
        "tuned",
        v2,
        clean,
        {"learning_rate": 0.01, "optimizer": "adam", "epochs": 5},
        dag_id=DEMO_DAG,
        run_id=DEMO_RUN,
        task_id="train_tuned",
        tags=["tuned"],
    )
    for key, final in (("baseline", 0.81), ("tuned", 0.88)):
        exp = ids[key]
        store.set_status(exp, "Running")
        scale = 1.0 if key == "baseline" else 0.8
        store.log_metrics(
            exp, {"loss": [scale * x for x in (1.0, 0.7, 0.5, 0.4, 0.35)]}, evaluation_set="train"
        )
        store.log_metrics(
            exp, {"loss": [scale * x for x in (1.1, 0.8, 0.65, 0.6, 0.58)]}, evaluation_set="validation"
        )
        store.log_metrics(exp, {"accuracy": final, "f1": final - 0.02}, evaluation_set="test")
        store.set_status(exp, "Completed")
    ids["xss"] = store.create_experiment("vision", XSS_NAME, v1, raw, {"note": "</script><b>x</b>"})
    store.set_status(ids["xss"], "Running")
    store.log_metrics(ids["xss"], {"accuracy": float("nan")}, evaluation_set="test")
    store.set_status(ids["xss"], "Failed", error="CUDA out of memory <oops>")
    ids["hidden"] = store.create_experiment(
        "vision",
        "secret-experiment",
        v2,
        clean,
        {"learning_rate": 0.5},
        dag_id=HIDDEN_DAG,
        run_id="r9",
        task_id="train",
    )
    store.log_metrics(ids["hidden"], {"accuracy": 0.99}, evaluation_set="test")
    store.ensure_project("empty-project", description="nothing here yet")
    store.deploy_model("vision", "prod", v1, 100, url="https://models.example/prod")
    store.deploy_model("vision", "prod", v2, 10, dag_id=DEMO_DAG, run_id=DEMO_RUN)
    store.deploy_model("vision", "prod", v2, 100, dag_id=DEMO_DAG, run_id=DEMO_RUN)
    return ids


@pytest.fixture(scope="session")
def ui_airflow_home(tmp_path_factory) -> Path:
    """The session AIRFLOW_HOME (tests/conftest.py) with auth settings and a migrated metadata DB."""
    home = Path(os.environ["AIRFLOW_HOME"])
    os.environ.update(auth_env(tmp_path_factory.mktemp("ui-auth")))
    print(f"airflow db migrate: {migrate():.1f}s")
    return home


@pytest.fixture(scope="module")
def seeded_pg(pg_server, pg_template):
    """A PostgreSQL tracking database at head, seeded once per module: (url, ids)."""
    import uuid

    from airflow_mltrack.store.engine import dispose_engines

    name = f"ui_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    ids = seed(url)
    dispose_engines()
    yield url, ids
    dispose_engines()
    pg_server.drop_database(name)


def dag_reader_headers(monkeypatch: pytest.MonkeyPatch, readable: str) -> dict[str, str]:
    """Headers of 'viewer', made able to read DAG ``readable`` only (the auth manager's DAG check patched)."""
    from airflow.api_fastapi.app import get_auth_manager

    from tests.reliability._support import token

    manager = get_auth_manager()
    original = manager.is_authorized_dag

    def is_authorized_dag(*, method, user, access_entity=None, details=None):
        if user.get_name() == "viewer" and details is not None and details.id != readable:
            return False
        return original(method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", is_authorized_dag)
    return {"Authorization": f"Bearer {token('viewer', 'viewer')}"}
