"""Security: authentication on every route, HTML escaping on every page, secrets never shown or logged.

Routes are enumerated from the ML Tracking FastAPI app itself, so a route added later is checked too (and
a route with a required parameter this file cannot fill fails the test until ``VALUES`` learns it).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.reliability._support import all_text, enable_auth, mltrack_client, mounted_app, run_dag, token

pytestmark = pytest.mark.postgres

XSS = "<script>alert(1)</script>"
RAW = "<script>alert(1)"
ESCAPED = "&lt;script&gt;alert(1)"
PROJECT = f"{XSS}project"
# Written with a plain TrackingStore (not through the hook): the plugin must still hide them.
STORED_SECRETS = {
    "api_key": "sk-stored-6c5b4a3f2e",
    "password": "pw-stored-8e7d6c5b4a",
    "token": "tk-stored-1a2b3c4d",
}
CONN_PASSWORD = "conn-pw-Zq8Xw3Vt"


# ------------------------------------------------------------------------------ routes
def routes(client: Any) -> list[Any]:
    from fastapi.routing import APIRoute

    found = [r for r in mounted_app(client).routes if isinstance(r, APIRoute) and "GET" in r.methods]
    assert len(found) >= 25, [r.path for r in found]
    return found


def is_page(route: Any) -> bool:
    return not route.path.startswith(("/api/", "/static/", "/openapi.json"))


def serves_files(route: Any) -> bool:
    """MLflow's protocol (``/mlflow/...``) and artifact downloads (``.../artifacts/{path}``): MLflow's JSON or a
    logged file's bytes (sandboxed, never inline HTML), addressed per run; tests/plugins/test_artifacts.py and
    tests/mlflow cover them. Here they are only checked to refuse requests without a valid token."""
    return route.path.startswith("/mlflow/") or "/artifacts/" in route.path


def url_for(route: Any, values: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """``/mltrack<route>`` with its path parameters and the query parameters ``values`` knows filled in."""
    path = route.path
    for param in route.dependant.path_params:
        if param.name not in values:
            raise AssertionError(f"{route.path}: no value for path parameter {param.name!r}")
        path = re.sub(r"\{" + param.name + r"(:path)?\}", quote(str(values[param.name]), safe=""), path)
    query: dict[str, Any] = {}
    for param in route.dependant.query_params:
        if param.alias in values:
            query[param.alias] = values[param.alias]
        elif param.field_info.is_required():
            raise AssertionError(f"{route.path}: no value for required query parameter {param.alias!r}")
        if extra and param.alias in extra:
            query[param.alias] = extra[param.alias]
    return "/mltrack" + path + ("?" + urlencode(query) if query else "")


# ------------------------------------------------------------------------------ a store full of <script>
def seed_xss(store: Any) -> dict[str, Any]:
    """Every name, description and free-text field of every entity holds a <script> (one project)."""
    store.ensure_project(PROJECT, description=XSS)
    data = store.register_dataset(
        PROJECT, f"{XSS}data", "Tabular", description=XSS, source_url=XSS, tags=[XSS]
    )
    model = store.register_model(
        PROJECT, f"{XSS}model", f"{XSS}fw", architecture=XSS, description=XSS, model_path=XSS, model_type=XSS
    )
    link = {"dag_id": f"{XSS}dag", "run_id": f"{XSS}run", "task_id": f"{XSS}task"}
    first = store.create_experiment(
        PROJECT,
        f"{XSS}experiment",
        model,
        data,
        {XSS: XSS, "note": f"</script>{XSS}", "nested": {"k": [XSS]}},
        description=XSS,
        notes=XSS,
        code_version=XSS,
        tags=[XSS],
        **link,
    )
    second = store.create_experiment(PROJECT, "plain", model, data, {"lr": 0.1}, **{**link, "task_id": "t2"})
    for experiment in (first, second):
        store.set_status(experiment, "Running")
        store.log_metrics(experiment, {XSS: [1.0, 0.5]}, evaluation_set="train")
        store.log_metrics(experiment, {XSS: 0.9, "accuracy": 0.8})
    store.set_status(first, "Failed", error=XSS)
    store.record_preprocessing_job(
        PROJECT,
        f"{XSS}job",
        data,
        output_dataset={"name": f"{XSS}derived", "data_type": "Tabular"},
        parameters={XSS: XSS},
        error=XSS,
        **link,
    )
    store.ensure_endpoint(PROJECT, f"{XSS}endpoint", url=XSS, description=XSS)
    store.deploy_model(
        PROJECT, f"{XSS}endpoint", model, 100, url=XSS, **{k: link[k] for k in ("dag_id", "run_id")}
    )
    # Secrets written around the hook (an older version, plain TrackingStore use): rendering must hide them.
    hidden = store.create_experiment(
        PROJECT, "stored-secrets", model, data, {**STORED_SECRETS, "lr": 0.1}, **{**link, "task_id": "t3"}
    )
    store.record_preprocessing_job(PROJECT, "secret-job", data, parameters=STORED_SECRETS)
    return {
        "experiment_id": first,
        "dataset_id": data,
        "model_id": model,
        "ids": f"{first},{second},{hidden}",
        "project": PROJECT,
        "metric": XSS,
        "path": "mltrack.css",
        **link,
        "hidden": hidden,
    }


@pytest.fixture(scope="module")
def site(pg_server, pg_template, tmp_path_factory):
    """(client, values for the routes, engine) on a PostgreSQL store seeded by ``seed_xss``."""
    from sqlalchemy import create_engine

    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.engine import dispose_engines
    from airflow_mltrack.store.redaction import NO_REDACTION

    enable_auth(tmp_path_factory.mktemp("auth"))
    name = f"sec_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    values = seed_xss(TrackingStore.from_url(url, redaction=NO_REDACTION))
    engine = create_engine(url)
    with mltrack_client(url) as client:
        yield client, values, engine
    engine.dispose()
    dispose_engines()
    pg_server.drop_database(name)


# ------------------------------------------------------------------------------ authentication
def _forged_tokens() -> dict[str, str]:
    import jwt

    valid = token()
    claims = jwt.decode(valid, options={"verify_signature": False})
    header = jwt.get_unverified_header(valid)
    return {
        "garbage": "not-a-jwt",
        "expired": token(seconds=-3600),
        "wrong-signature": jwt.encode(claims, "another-secret-" + "x" * 64, algorithm=header["alg"]),
        "unsigned": jwt.encode(claims, key=None, algorithm="none"),
        "truncated": valid[:-10],
    }


def test_every_route_refuses_requests_without_a_valid_airflow_token(site):
    client, values, _ = site
    forged = _forged_tokens()
    admin = {"Authorization": f"Bearer {token()}"}
    checked = []
    for route in routes(client):
        url = url_for(route, values)
        attempts = {"no token": client.get(url)}
        for kind, value in forged.items():
            attempts[f"bearer {kind}"] = client.get(url, headers={"Authorization": f"Bearer {value}"})
            client.cookies.set("_token", value)
            try:
                attempts[f"cookie {kind}"] = client.get(url)
            finally:
                client.cookies.clear()
        for how, response in attempts.items():
            assert response.status_code in (401, 403), (route.path, how, response.status_code)
            assert XSS not in response.text and "sk-stored" not in response.text, (route.path, how)
        signed_in = client.get(url, headers=admin, follow_redirects=False)
        ok = (200, 303) if not serves_files(route) else (200, 400, 404)  # no such file/run: past auth
        assert signed_in.status_code in ok, (route.path, signed_in.status_code, signed_in.text[:300])
        checked.append(route.path)
    assert {"/api/experiments", "/experiments/{experiment_id}", "/static/{path:path}"} <= set(checked)


# ------------------------------------------------------------------------------ escaping
def test_every_page_escapes_html(site):
    client, values, _ = site
    admin = {"Authorization": f"Bearer {token()}"}
    pages = [r for r in routes(client) if is_page(r) and not serves_files(r)]
    assert len(pages) >= 12, [r.path for r in pages]
    for route in pages:
        response = client.get(url_for(route, values), headers=admin)
        assert response.status_code == 200, (route.path, response.status_code, response.text[:300])
        assert response.headers["content-type"].startswith("text/html"), route.path
        assert RAW not in response.text, route.path
        assert "</script><script>" not in response.text, route.path
        if route.path != "/schema":
            assert ESCAPED in response.text, route.path
        # Every query parameter echoed back (filters, error messages) is escaped too.
        reflected = {p.alias: XSS for p in route.dependant.query_params}
        if reflected:
            echoed = client.get(url_for(route, values, reflected), headers=admin)
            assert echoed.headers["content-type"].startswith("text/html"), route.path
            assert RAW not in echoed.text, (route.path, echoed.status_code)
    for path in (
        "/mltrack/experiments/999999",
        f"/mltrack/nothing/{quote(XSS)}",
        f"/mltrack/static/{quote(XSS)}",
    ):
        response = client.get(path, headers=admin)
        assert response.status_code == 404 and RAW not in response.text, path


# ------------------------------------------------------------------------------ secrets
def _api_and_pages(client: Any, values_list: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(url, body) of every GET route for each of ``values_list`` (static files left out)."""
    admin = {"Authorization": f"Bearer {token()}"}
    bodies = []
    for values in values_list:
        for route in routes(client):
            if route.path.startswith("/static/") or serves_files(route):
                continue
            url = url_for(route, values)
            response = client.get(url, headers=admin)
            assert response.status_code == 200, (url, response.status_code, response.text[:300])
            bodies.append((url, response.text))
    return bodies


def test_stored_secrets_are_hidden_by_the_api_and_pages(site):
    client, values, engine = site
    assert STORED_SECRETS["api_key"] in all_text(engine)  # written around the hook on purpose
    bodies = _api_and_pages(client, [values, {**values, "experiment_id": values["hidden"]}])
    for url, body in bodies:
        for secret in STORED_SECRETS.values():
            assert secret not in body, (url, secret)
    experiment = client.get(
        f"/mltrack/api/experiments/{values['hidden']}", headers={"Authorization": f"Bearer {token()}"}
    ).json()["experiment"]
    assert experiment["hyperparameters"] == {"api_key": "***", "password": "***", "token": "***", "lr": 0.1}


@pytest.mark.airflow
def test_secrets_never_reach_the_store_logs_api_or_pages(tracking_pg, monkeypatch, capfd, caplog, tmp_path):
    import json

    from sqlalchemy.engine import make_url

    from airflow_mltrack.store import TrackingStore
    from tests.reliability.input_dags.mltrack_reliability_dags import SECRETS

    enable_auth(tmp_path)
    # The tracking connection has a password (the test server trusts local connections, so any works).
    url = make_url(tracking_pg)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLTRACK_DEFAULT",
        json.dumps(
            {
                "conn_type": "mltrack",
                "host": url.host,
                "port": url.port,
                "login": url.username,
                "password": CONN_PASSWORD,
                "schema": url.database,
            }
        ),
    )
    caplog.set_level(logging.DEBUG, logger="airflow_mltrack")
    capfd.readouterr()
    result = run_dag("mltrack_secrets")
    captured = capfd.readouterr()
    log = captured.out + captured.err + caplog.text
    assert result["state"] == "success", result
    assert "experiment" in log and "postgresql+psycopg://postgres:***@" in log  # the hook logged its URL
    secrets = [*SECRETS.values(), CONN_PASSWORD]
    for secret in secrets:
        assert secret not in log, secret

    store = TrackingStore.from_url(tracking_pg)
    stored = all_text(store.engine)
    for secret in secrets:
        assert secret not in stored, secret
    by_name = {e["name"]: e for e in store.list_experiments("secrets")}
    assert by_name["operator"]["hyperparameters"] == {
        "lr": 0.1,
        "api_key": "***",
        "connection": {"db_password": "***"},
    }
    assert by_name["train"]["hyperparameters"] == {
        "lr": 0.05,
        "password": "***",
        "hf_token": "***",
        "client_secret": "***",
        "max_tokens": 512,  # only strings are hidden, as Airflow does
    }
    [job] = store.list_preprocessing_jobs("secrets")
    assert job["parameters"] == {"aws_secret_access_key": "***", "scale": 2}

    dataset = next(d for d in store.list_datasets("secrets") if d["name"] == "d")
    values = {
        "project": "secrets",
        "ids": ",".join(str(e["experiment_id"]) for e in by_name.values()),
        "metric": "loss",
        "dataset_id": dataset["dataset_id"],
        "model_id": next(iter(by_name.values()))["model_id"],
        "dag_id": "mltrack_secrets",
        "run_id": result["run_id"],
        "task_id": "train",
        "path": "mltrack.css",
    }
    with mltrack_client(tracking_pg) as client:
        bodies = _api_and_pages(
            client, [{**values, "experiment_id": e["experiment_id"]} for e in by_name.values()]
        )
    assert any('"api_key":"***"' in body for _, body in bodies)
    for page, body in bodies:
        for secret in secrets:
            assert secret not in body, (page, secret)


@pytest.mark.parametrize(
    ("key", "hidden"),
    [
        ("password", True),
        ("db_password", True),
        ("apiKey", True),
        ("hf_token", True),
        ("aws_secret_access_key", True),
        ("Authorization", True),
        ("dbPassword", True),
        ("openaiApiKey", True),
        ("AWSSecretAccessKey", True),
        ("secretKey", True),
        ("pwd", True),
        ("credentials", True),
        ("ssh_key", True),
        ("auth", True),
        ("DB-PASSWORD", True),
        ("tokenizer", False),
        ("max_tokens", False),
        ("optimizer", False),
        ("learning_rate", False),
        ("pin_memory", False),
        ("author", False),
        ("keyboard_layout", False),
        ("db_url", False),
    ],
)
def test_which_hyperparameter_keys_are_secret(key, hidden):
    from airflow_mltrack.hooks.mltrack import REDACTED, redact_secrets

    assert (redact_secrets({key: "value"})[key] == REDACTED) is hidden
    assert (redact_secrets({key: 918273})[key] == REDACTED) is hidden  # numbers too
    assert redact_secrets({key: None})[key] is None


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://etl:hunter2@db:5432/x", "postgresql://etl:***@db:5432/x"),
        ("connect failed: password=hunter2 host=db", "connect failed: password=*** host=db"),
        ("{'apiKey': 'abc123', 'lr': 0.1}", "{'apiKey': '***', 'lr': 0.1}"),
        ('{"dbPassword": "a b c"}', '{"dbPassword": "***"}'),
        ("401: Authorization: Bearer abcdefghijkl", "401: Authorization: ***"),
        ("key sk-abcdefghijklmnopqrstuvwx leaked", "key *** leaked"),
        (
            "https://example.com:8443/x token budget exceeded",
            "https://example.com:8443/x token budget exceeded",
        ),
        ("CUDA out of memory <oops>", "CUDA out of memory <oops>"),
    ],
)
def test_secrets_inside_text_are_masked(text, shown):
    from airflow_mltrack.hooks.mltrack import redact_secrets, redact_text

    assert redact_text(text) == shown
    assert redact_secrets({"note": text}) == {"note": shown}


def test_names_the_admin_lists_as_sensitive_are_hidden(monkeypatch):
    from airflow_mltrack.hooks.mltrack import REDACTED, redact_secrets

    assert redact_secrets({"vault_ref": "kv/prod/db"})["vault_ref"] == "kv/prod/db"
    monkeypatch.setenv("AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES", "vault_ref,Other")
    assert redact_secrets({"myVault_Ref": "kv/prod/db"})["myVault_Ref"] == REDACTED  # anywhere in the key
    monkeypatch.delenv("AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES")
    assert redact_secrets({"vault_ref": "kv/prod/db"})["vault_ref"] == "kv/prod/db"
