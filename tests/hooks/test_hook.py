"""MLTrackHook with real Airflow: connections from ``AIRFLOW_CONN_<ID>`` (JSON and URI form), the embedded
SQLite default, secrets kept out of the log, and the provider as Airflow's ProvidersManager sees it.

The ProvidersManager / ``airflow mltrack`` tests need the package installed (``pip install -e .``), which
registers the ``apache_airflow_provider`` entry point.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from airflow_mltrack import MLTrackError, get_provider_info
from airflow_mltrack.hooks import MLTrackHook
from airflow_mltrack.hooks import mltrack as hook_module
from airflow_mltrack.provider_info import PROVIDER_INFO
from airflow_mltrack.vocabulary import mask_url

PASSWORD = "s3cr3t-P4ss"  # noqa: S105 - a test value that must never reach the log


@pytest.fixture(autouse=True)
def airflow_home(tmp_path, monkeypatch):
    """A private AIRFLOW_HOME and no stray AIRFLOW_CONN_* variables."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    for key in list(os.environ):
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.delenv(key)
    monkeypatch.setattr(hook_module, "_logged_once", set())
    return home


def _conn_env(monkeypatch, conn_id: str, value: dict | str) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value) if isinstance(value, dict) else value
    )


# ---------------------------------------------------------------------------------------------- resolving


def test_postgres_connection_json_gives_psycopg_url_with_libpq_extras(monkeypatch):
    _conn_env(
        monkeypatch,
        "tracking_pg",
        {
            "conn_type": "postgres",
            "host": "db.example.com",
            "port": 6543,
            "login": "ml",
            "password": PASSWORD,
            "schema": "tracking",
            "extra": {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "cursor": "dictcursor"},
        },
    )
    url = make_url(MLTrackHook.resolve_url("tracking_pg"))
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database) == ("db.example.com", 6543, "tracking")
    assert (url.username, url.password) == ("ml", PASSWORD)
    assert dict(url.query) == {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem"}  # cursor: hook-only


def test_postgres_connection_url_comes_from_postgres_hook(monkeypatch):
    """sslmode/options extras and a password with URL-special characters survive the round trip."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    password = "p@ss:w/rd#%?&= x"  # noqa: S105 - a test value
    _conn_env(
        monkeypatch,
        "pg_special",
        {
            "conn_type": "postgres",
            "host": "db.example.com",
            "login": "ml",
            "password": password,
            "schema": "tracking",
            "extra": {
                "sslmode": "require",
                "options": "-c search_path=mltrack,public",
                "keepalives": True,
                "sqlalchemy_query": {"application_name": "mltrack"},
            },
        },
    )
    built: list[str] = []
    original = PostgresHook.sqlalchemy_url

    def spy(hook):
        built.append(hook.postgres_conn_id)
        return original.fget(hook)

    monkeypatch.setattr(PostgresHook, "sqlalchemy_url", property(spy))
    hook = MLTrackHook(mltrack_conn_id="pg_special")
    url = hook.sqlalchemy_url
    assert built == ["pg_special"]
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "ml",
        password,
        "db.example.com",
        None,
        "tracking",
    )
    assert dict(url.query) == {
        "sslmode": "require",
        "options": "-c search_path=mltrack,public",
        "keepalives": "1",
        "application_name": "mltrack",
    }
    assert make_url(hook.get_uri()) == url  # the rendered form parses back to the same URL
    assert password not in mask_url(url)


def test_postgres_extras_refused_clearly(monkeypatch):
    _conn_env(
        monkeypatch, "pg_nested", {"conn_type": "postgres", "host": "h", "extra": {"options": {"a": 1}}}
    )
    with pytest.raises(MLTrackError, match="extra.options"):
        MLTrackHook.resolve_url("pg_nested")
    _conn_env(
        monkeypatch,
        "pg_driver",
        {"conn_type": "postgres", "host": "h", "extra": {"sqlalchemy_scheme": "postgresql+psycopg2"}},
    )
    with pytest.raises(MLTrackError, match="extra.sqlalchemy_scheme"):
        MLTrackHook.resolve_url("pg_driver")


def test_postgres_connection_uri_form(monkeypatch):
    _conn_env(monkeypatch, "pg_uri", f"postgres://ml:{PASSWORD}@db.internal:5432/mlt?sslmode=require")
    hook = MLTrackHook(mltrack_conn_id="pg_uri")
    url = make_url(hook.get_uri())
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username) == ("db.internal", 5432, "mlt", "ml")
    assert url.query == {"sslmode": "require"}
    assert not hook.is_embedded


def test_postgres_iam_is_refused_clearly(monkeypatch):
    _conn_env(monkeypatch, "pg_iam", {"conn_type": "postgres", "host": "h", "extra": {"iam": True}})
    with pytest.raises(MLTrackError, match="extra.iam"):
        MLTrackHook.resolve_url("pg_iam")


def test_mltrack_connection_fields_give_postgres_url(monkeypatch):
    _conn_env(
        monkeypatch,
        "mltrack_default",
        {
            "conn_type": "mltrack",
            "host": "pg",
            "login": "u",
            "password": PASSWORD,
            "schema": "mlt",
            "extra": {"sslmode": "require", "backend": "postgresql"},
        },
    )
    url = make_url(MLTrackHook().get_uri())
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.password) == ("pg", None, "mlt", PASSWORD)
    assert url.query == {"sslmode": "require"}


def test_mltrack_connection_with_extra_url(monkeypatch):
    _conn_env(
        monkeypatch,
        "mlt_url",
        {"conn_type": "mltrack", "extra": {"url": "postgresql://track@10.0.0.5:5433/exp?sslmode=disable"}},
    )
    url = make_url(MLTrackHook.resolve_url("mlt_url"))
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username) == ("10.0.0.5", 5433, "exp", "track")
    assert url.query == {"sslmode": "disable"}


def test_mltrack_extra_url_takes_password_from_password_field(monkeypatch):
    _conn_env(
        monkeypatch,
        "mlt_url_pw",
        {"conn_type": "mltrack", "password": PASSWORD, "extra": {"url": "postgresql://track@db/exp"}},
    )
    assert make_url(MLTrackHook.resolve_url("mlt_url_pw")).password == PASSWORD


def test_mltrack_connection_sqlite_backend(monkeypatch, tmp_path, airflow_home):
    db = tmp_path / "data" / "track.db"
    _conn_env(
        monkeypatch, "mlt_sqlite", {"conn_type": "mltrack", "extra": {"backend": "sqlite", "path": str(db)}}
    )
    url = make_url(MLTrackHook.resolve_url("mlt_sqlite"))
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(db)

    _conn_env(
        monkeypatch, "mlt_rel", {"conn_type": "mltrack", "extra": {"backend": "sqlite", "path": "x.db"}}
    )
    assert make_url(MLTrackHook.resolve_url("mlt_rel")).database == str(airflow_home / "x.db")


def test_sqlite_connection_host_is_path(monkeypatch, tmp_path):
    db = tmp_path / "plain.db"
    _conn_env(monkeypatch, "plain_sqlite", {"conn_type": "sqlite", "host": str(db)})
    url = make_url(MLTrackHook.resolve_url("plain_sqlite"))
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(db)


def test_unsupported_connection_type(monkeypatch):
    _conn_env(monkeypatch, "http_conn", {"conn_type": "http", "host": "example.com"})
    with pytest.raises(MLTrackError, match="conn_type"):
        MLTrackHook.resolve_url("http_conn")


def test_no_connection_uses_embedded_sqlite_logged_once(caplog, airflow_home):
    caplog.set_level(logging.INFO)
    first = MLTrackHook()
    url = make_url(first.get_uri())
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(airflow_home / "mltrack.db")
    assert first.is_embedded
    MLTrackHook().get_uri()
    MLTrackHook.resolve_url("mltrack_default")

    said = [r for r in caplog.records if "no connection 'mltrack_default'" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]
    assert said[0].levelno == logging.INFO
    assert f"using embedded SQLite at {airflow_home / 'mltrack.db'}" in said[0].getMessage()


def test_password_never_logged(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    _conn_env(
        monkeypatch,
        "secret_pg",
        {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": 1,  # nothing listens: test_connection fails fast
            "login": "ml",
            "password": PASSWORD,
            "schema": "mlt",
            "extra": {"connect_timeout": 2},
        },
    )
    hook = MLTrackHook(mltrack_conn_id="secret_pg")
    assert PASSWORD in hook.get_uri()  # the URL itself carries it; only the log must not
    ok, message = hook.test_connection()
    assert not ok
    assert PASSWORD not in message
    _conn_env(
        monkeypatch,
        "secret_url",
        {"conn_type": "mltrack", "extra": {"url": f"postgresql://ml:{PASSWORD}@127.0.0.1:1/mlt"}},
    )
    MLTrackHook.resolve_url("secret_url")

    assert any("secret_pg" in r.getMessage() for r in caplog.records), "the DEBUG line was not emitted"
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
        assert PASSWORD not in (record.exc_text or "")
    assert PASSWORD not in caplog.text


# ---------------------------------------------------------------------------------------------- store


def test_current_task_link_outside_and_inside_a_task():
    from types import SimpleNamespace

    from airflow.sdk.execution_time.context import set_current_context

    assert hook_module.current_task_link() is None
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=None, try_number=2)
    with set_current_context({"ti": ti}):
        link = hook_module.current_task_link()
    assert (link.dag_id, link.run_id, link.task_id, link.map_index, link.try_number) == ("d", "r", "t", -1, 2)
    assert hook_module.current_task_link() is None


def test_embedded_default_get_store_works(airflow_home):
    store = MLTrackHook().get_store()
    project_id = store.ensure_project("hook-smoke")
    assert isinstance(project_id, int)
    assert store.ensure_project("hook-smoke") == project_id
    assert (airflow_home / "mltrack.db").exists()
    ok, message = MLTrackHook().test_connection()
    assert ok, message
    assert "schema revision " in message


# Each process is one task of a DAG whose parallel tasks all use the embedded default for the first time:
# it waits at a gate (so all of them open the fresh file at once), then records a run.
_FIRST_USE_TASK = """
import os, sys, time
from airflow_mltrack.hooks import MLTrackHook
gate, index = sys.argv[1], sys.argv[2]
while not os.path.exists(gate):
    time.sleep(0.005)
store = MLTrackHook().get_store()
dataset = store.register_dataset("churn", "customers", "Tabular")
model = store.register_model("churn", "xgb", "xgboost", version=index)
experiment = store.create_experiment("churn", "fit-" + index, model, dataset, {"max_depth": int(index)})
store.log_metrics(experiment, {"auc": 0.5 + int(index) / 100})
print("experiment", experiment)
"""


def test_embedded_default_first_used_by_six_parallel_tasks(airflow_home, tmp_path):
    gate = tmp_path / "go"
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home)}
    tasks = [
        subprocess.Popen(
            [sys.executable, "-c", _FIRST_USE_TASK, str(gate), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    gate.touch()
    outcomes = [(task.wait(timeout=300), *task.communicate()) for task in tasks]
    for code, _out, err in outcomes:
        assert code == 0, err[-3000:]
    store = MLTrackHook().get_store()
    assert len(store.list_models("churn")) == 6
    ids = {
        line.split()[1]
        for _code, out, _err in outcomes
        for line in out.splitlines()
        if line.startswith("experiment ")
    }
    assert len(ids) == 6


def test_test_connection_embedded_sqlite():
    ok, message = MLTrackHook().test_connection()
    assert ok, message
    assert "sqlite" in message


def test_test_connection_real_postgres(monkeypatch, pg_database):
    url = make_url(pg_database)
    _conn_env(
        monkeypatch,
        "real_pg",
        {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "password": url.password,
            "schema": url.database,
        },
    )
    ok, message = MLTrackHook(mltrack_conn_id="real_pg").test_connection()
    assert ok, message
    assert url.database in message


# ---------------------------------------------------------------------------------------------- provider


def _schema(name: str) -> dict:
    import airflow

    return json.loads((Path(airflow.__file__).parent / name).read_text())


def test_provider_info_valid_against_airflow_schema():
    import jsonschema

    assert get_provider_info() is PROVIDER_INFO
    jsonschema.validate(PROVIDER_INFO, _schema("provider_info.schema.json"))


def test_connection_form_valid_against_provider_yaml_schema():
    """The runtime schema does not describe ``ui-field-behaviour``/``conn-fields``; provider.yaml's does."""
    import jsonschema

    yaml_schema = _schema("provider.yaml.schema.json")
    conn_type_schema = yaml_schema["properties"]["connection-types"]["items"]
    (conn_type,) = PROVIDER_INFO["connection-types"]
    jsonschema.validate(conn_type, conn_type_schema)
    assert conn_type["connection-type"] == MLTrackHook.conn_type
    assert conn_type["hook-class-name"] == f"{MLTrackHook.__module__}.{MLTrackHook.__qualname__}"
    # ProvidersManager validates the behaviour (snake_case) against this schema too.
    behaviour = conn_type["ui-field-behaviour"]
    jsonschema.validate(
        {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        },
        _schema("customized_form_field_behaviours.schema.json"),
    )


def _require_installed() -> None:
    try:
        dist = metadata.distribution("airflow-mltrack")
    except metadata.PackageNotFoundError:
        pytest.fail("airflow-mltrack is not installed: run `pip install -e .` (registers the entry points)")
    names = {ep.group for ep in dist.entry_points}
    assert "apache_airflow_provider" in names


@pytest.fixture
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    _require_installed()
    return ProvidersManager()


def test_provider_discovered_by_providers_manager(providers_manager):
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "airflow-mltrack" in providers_manager.providers
    runtime = ProvidersManagerTaskRuntime()
    assert "mltrack" in runtime.taskflow_decorators  # lazy: the decorator is not imported here
    hook_info = runtime.hooks["mltrack"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_mltrack.hooks.mltrack.MLTrackHook"
    assert hook_info.connection_id_attribute_name == "mltrack_conn_id"
    assert hook_info.hook_name == "ML Tracking"
    assert hook_info.connection_testable


def test_sdk_connection_test_uses_the_hook(providers_manager, tmp_path):
    """What the UI's Test button runs: Connection.get_hook() -> MLTrackHook.test_connection()."""
    from airflow.sdk import Connection

    conn = Connection(
        conn_id="ui_test",
        conn_type="mltrack",
        extra=json.dumps({"backend": "sqlite", "path": str(tmp_path / "ui.db")}),
    )
    hook = conn.get_hook()
    assert isinstance(hook, MLTrackHook)
    assert hook.mltrack_conn_id == "ui_test"
    ok, message = conn.test_connection()
    assert ok, message
    assert str(tmp_path / "ui.db") in message


def test_connection_form_fields_registered(providers_manager):
    pm = providers_manager
    widgets = pm._connection_form_widgets_from_metadata
    for field in ("url", "backend", "path", "sslmode"):
        assert f"extra__mltrack__{field}" in widgets
    assert widgets["extra__mltrack__url"].field["schema"]["title"] == "SQLAlchemy URL"
    behaviour = pm._field_behaviours_from_metadata["mltrack"]
    assert behaviour["relabeling"] == {"schema": "Database"}
    assert behaviour["placeholders"]["port"] == "5432"

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    HookMetaService.hook_meta_data.cache_clear()
    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "mltrack"]
    assert meta.hook_name == "ML Tracking"
    assert set(meta.extra_fields) == {"url", "backend", "path", "sslmode"}
    assert meta.standard_fields.url_schema.title == "Database"


def test_provider_cli_command_registered(providers_manager):
    from airflow_mltrack.cli.airflow_cli import get_cli_commands

    assert get_cli_commands in providers_manager.cli_command_functions
    assert "airflow-mltrack" in providers_manager.cli_command_providers


def test_airflow_mltrack_cli_runs_click_group(airflow_home):
    _require_installed()
    airflow = Path(sys.executable).with_name("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home)}
    done = subprocess.run(  # noqa: S603 - our own venv's airflow
        [str(airflow), "mltrack", "--version"], capture_output=True, text=True, env=env, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    from airflow_mltrack import __version__

    assert __version__ in done.stdout

    done = subprocess.run(  # noqa: S603
        [str(airflow), "mltrack"], capture_output=True, text=True, env=env, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Usage: airflow mltrack" in done.stdout
