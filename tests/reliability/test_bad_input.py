"""Bad input on every surface: a clear MLTrackError (or HTTP/CLI error) naming the field, and 0 rows written.

Surfaces: the store and the metric payload parser (SQLite and PostgreSQL), the operators and ``@task.mltrack``
(a real ``dag.test()`` per case, see ``input_dags/``), the ``mltrack`` CLI (click's CliRunner) and the JSON
API (real Airflow auth). Every case counts the rows of every table before and after. Injection-looking
strings are either stored verbatim as names or refused, and every table is still there afterwards.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import pytest

from airflow_mltrack.errors import MLTrackError
from tests.reliability._support import (
    assert_nothing_written,
    enable_auth,
    mltrack_client,
    row_counts,
    run_dag,
    token,
)

PROJECT = "bad-input"
INJECTION = "'; DROP TABLE metrics; --"
MISSING = 999_999
TRACKING_TABLES = {
    "projects",
    "datasets",
    "models",
    "experiments",
    "metrics",
    "metric_latest",
    "preprocessing_jobs",
    "deployment_endpoints",
    "endpoint_models",
    "tags",
    "tag_assignments",
}


def seed(store: Any) -> dict[str, int]:
    """A dataset, a model, a running and a completed experiment in PROJECT, and a dataset elsewhere."""
    dataset = store.register_dataset(PROJECT, "d0", "Tabular")
    model = store.register_model(PROJECT, "m0", "sklearn")
    running = store.create_experiment(PROJECT, "e0", model, dataset)
    store.set_status(running, "Running")
    completed = store.create_experiment(PROJECT, "done", model, dataset)
    store.set_status(completed, "Running")
    store.set_status(completed, "Completed")
    store.log_metrics(running, {"accuracy": 0.9})
    foreign = store.register_dataset("other-project", "elsewhere", "Tabular")
    return {
        "dataset_id": dataset,
        "model_id": model,
        "experiment_id": running,
        "completed_id": completed,
        "foreign_dataset_id": foreign,
    }


def assert_names(error: MLTrackError, field: str, reason: str) -> None:
    """The error names ``field`` (attribute and message start) and says ``reason``."""
    assert type(error).__module__ == "airflow_mltrack.errors", type(error)
    assert error.field == field, (error.field, str(error))
    assert str(error).startswith(f"{field}="), str(error)
    assert reason in str(error), str(error)


# ------------------------------------------------------------------------------ store and payload parser
def _rows(n: int, bad_last: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"name": "loss", "value": 1.0 / (i + 1), "step": i} for i in range(n)]
    if bad_last:
        rows[-1]["value"] = "high"
    return rows


STORE_CASES = [
    # (id, call(store, ids), field, reason)
    (
        "dataset-blank-name",
        lambda s, i: s.register_dataset(PROJECT, "  ", "Tabular"),
        "name",
        "must not be empty",
    ),
    (
        "dataset-overlong-name",
        lambda s, i: s.register_dataset(PROJECT, "n" * 256, "Tabular"),
        "name",
        "at most 255",
    ),
    ("dataset-nul-in-name", lambda s, i: s.register_dataset(PROJECT, "a\x00b", "Tabular"), "name", "NUL"),
    ("leaderboard-nul-in-metric", lambda s, i: s.leaderboard(PROJECT, "a\x00b"), "metric", "NUL"),
    ("history-nul-in-name", lambda s, i: s.metric_history(i["experiment_id"], "a\x00b"), "name", "NUL"),
    ("dataset-name-not-text", lambda s, i: s.register_dataset(PROJECT, 42, "Tabular"), "name", "not int"),
    (
        "dataset-version-nan",
        lambda s, i: s.register_dataset(PROJECT, "d", "Tabular", version=math.nan),
        "version",
        "NaN or infinity",
    ),
    (
        "dataset-version-inf",
        lambda s, i: s.register_dataset(PROJECT, "d", "Tabular", version=math.inf),
        "version",
        "NaN or infinity",
    ),
    (
        "dataset-size-inf",
        lambda s, i: s.register_dataset(PROJECT, "d", "Tabular", size_bytes=math.inf),
        "size_bytes",
        "whole, finite",
    ),
    (
        "dataset-size-nan",
        lambda s, i: s.register_dataset(PROJECT, "d", "Tabular", size_bytes=math.nan),
        "size_bytes",
        "whole, finite",
    ),
    (
        "dataset-records-negative",
        lambda s, i: s.register_dataset(PROJECT, "d", "Tabular", num_records=-1),
        "num_records",
        ">= 0",
    ),
    (
        "dataset-records-text",
        lambda s, i: s.register_dataset(PROJECT, "d", "Tabular", num_records="many"),
        "num_records",
        "an integer",
    ),
    (
        "dataset-unknown-type",
        lambda s, i: s.register_dataset(PROJECT, "d", "Spreadsheet"),
        "data_type",
        "must be one of",
    ),
    (
        "dataset-injected-type",
        lambda s, i: s.register_dataset(PROJECT, "d", INJECTION),
        "data_type",
        "must be one of",
    ),
    (
        "project-bad-date",
        lambda s, i: s.ensure_project("p2", start_date="31/12/2026"),
        "start_date",
        "YYYY-MM-DD",
    ),
    (
        "project-dates-reversed",
        lambda s, i: s.ensure_project("p2", start_date="2026-02-01", end_date="2026-01-01"),
        "end_date",
        "before start_date",
    ),
    (
        "project-unknown-status",
        lambda s, i: s.ensure_project("p2", status="Deleted"),
        "status",
        "must be one of",
    ),
    ("model-framework-not-text", lambda s, i: s.register_model(PROJECT, "m", 42), "framework", "not int"),
    (
        "model-schema-not-object",
        lambda s, i: s.register_model(PROJECT, "m", "f", input_schema="[1, 2]"),
        "input_schema",
        "JSON object",
    ),
    (
        "experiment-malformed-json",
        lambda s, i: s.create_experiment(PROJECT, "x", i["model_id"], i["dataset_id"], '{"lr": 0.1,'),
        "hyperparameters",
        "not valid JSON",
    ),
    (
        "experiment-param-nan",
        lambda s, i: s.create_experiment(PROJECT, "x", i["model_id"], i["dataset_id"], {"lr": math.nan}),
        "hyperparameters.lr",
        "finite",
    ),
    (
        "experiment-params-10mb",
        lambda s, i: s.create_experiment(
            PROJECT, "x", i["model_id"], i["dataset_id"], {"blob": "x" * 10 * 2**20}
        ),
        "hyperparameters",
        "at most 65,536 allowed",
    ),
    (
        "experiment-param-nul",
        lambda s, i: s.create_experiment(PROJECT, "x", i["model_id"], i["dataset_id"], {"note": "a\x00b"}),
        "hyperparameters.note",
        "NUL",
    ),
    (
        "experiment-param-not-json",
        lambda s, i: s.create_experiment(PROJECT, "x", i["model_id"], i["dataset_id"], {"f": object()}),
        "hyperparameters.f",
        "not JSON-serializable",
    ),
    (
        "experiment-missing-dataset",
        lambda s, i: s.create_experiment(PROJECT, "x", i["model_id"], MISSING),
        "dataset_id",
        "no dataset",
    ),
    (
        "experiment-foreign-dataset",
        lambda s, i: s.create_experiment(PROJECT, "x", i["model_id"], i["foreign_dataset_id"]),
        "dataset_id",
        "belongs to project 'other-project', not to",
    ),
    (
        "experiment-id-is-bool",
        lambda s, i: s.create_experiment(PROJECT, "x", True, i["dataset_id"]),
        "model_id",
        "boolean",
    ),
    (
        "experiment-unknown-status",
        lambda s, i: s.create_experiment(PROJECT, "x", i["model_id"], i["dataset_id"], status="Exploded"),
        "status",
        "must be one of",
    ),
    (
        "experiment-unknown-field",
        lambda s, i: s.create_experiment(PROJECT, "x", i["model_id"], i["dataset_id"], owner="me"),
        "experiment field",
        "unknown",
    ),
    (
        "log-params-10mb",
        lambda s, i: s.log_hyperparameters(i["experiment_id"], {"blob": "x" * 10 * 2**20}),
        "hyperparameters",
        "at most 65,536 allowed",
    ),
    (
        "status-illegal-move",
        lambda s, i: s.set_status(i["completed_id"], "Running"),
        "status",
        "is Completed; allowed next: none",
    ),
    ("status-unknown", lambda s, i: s.set_status(i["experiment_id"], "Done"), "status", "must be one of"),
    (
        "status-missing-experiment",
        lambda s, i: s.set_status(MISSING, "Completed"),
        "experiment_id",
        "no experiment",
    ),
    (
        "metrics-string-payload",
        lambda s, i: s.log_metrics(i["experiment_id"], "accuracy=0.9"),
        "metrics",
        "not a string",
    ),
    (
        "metrics-name-over-limit",
        lambda s, i: s.log_metrics(i["experiment_id"], {"a" * 101: 1.0}),
        "metrics name",
        "at most 100",
    ),
    (
        "metrics-step-over-limit",
        lambda s, i: s.log_metrics(i["experiment_id"], {"a": 1.0}, step=2**31),
        "step",
        "<= 2147483647",
    ),
    (
        "metrics-negative-step",
        lambda s, i: s.log_metrics(i["experiment_id"], [{"name": "a", "value": 1.0, "step": -1}]),
        "metrics[0].step",
        ">= 0",
    ),
    (
        "metrics-unknown-split",
        lambda s, i: s.log_metrics(i["experiment_id"], {"a": 1.0}, evaluation_set="holdout"),
        "evaluation_set",
        "must be one of",
    ),
    (
        "metrics-unknown-nested-split",
        lambda s, i: s.log_metrics(i["experiment_id"], {"holdout": {"a": 1.0}}),
        "metrics.holdout",
        "evaluation set",
    ),
    (
        "metrics-bool-value",
        lambda s, i: s.log_metrics(i["experiment_id"], {"a": True}),
        "metrics.a",
        "not bool",
    ),
    (
        "metrics-100k-rows-last-bad",
        lambda s, i: s.log_metrics(i["experiment_id"], _rows(100_000, True)),
        "metrics[99999].value",
        "not str",
    ),
    ("metrics-missing-experiment", lambda s, i: s.log_metrics(MISSING, {"a": 1.0}), "experiment_id", ""),
    (
        "deploy-traffic-over-100",
        lambda s, i: s.deploy_model(PROJECT, "prod", i["model_id"], 100.5),
        "traffic_percentage",
        "between 0 and 100",
    ),
    (
        "deploy-traffic-nan",
        lambda s, i: s.deploy_model(PROJECT, "prod", i["model_id"], math.nan),
        "traffic_percentage",
        "finite",
    ),
    (
        "deploy-traffic-minus-inf",
        lambda s, i: s.deploy_model(PROJECT, "prod", i["model_id"], -math.inf),
        "traffic_percentage",
        "finite",
    ),
    (
        "deploy-traffic-text",
        lambda s, i: s.deploy_model(PROJECT, "prod", i["model_id"], "lots"),
        "traffic_percentage",
        "not str",
    ),
    (
        "deploy-missing-model",
        lambda s, i: s.deploy_model(PROJECT, "prod", MISSING, 10),
        "model_id",
        "no model",
    ),
    (
        "deploy-retire-inactive",
        lambda s, i: s.deploy_model(PROJECT, "prod", i["model_id"], 0),
        "model_id",
        "not active",
    ),
    (
        "endpoint-unknown-status",
        lambda s, i: s.ensure_endpoint(PROJECT, "prod", status="Gone"),
        "status",
        "must be one of",
    ),
    (
        "job-output-is-input",
        lambda s, i: s.record_preprocessing_job(PROJECT, "j", i["dataset_id"], i["dataset_id"]),
        "output_dataset_id",
        "must differ",
    ),
    (
        "job-derived-without-type",
        lambda s, i: s.record_preprocessing_job(PROJECT, "j", i["dataset_id"], output_dataset={"name": "x"}),
        "output_dataset.data_type",
        "required",
    ),
    (
        "job-missing-input-with-derived",
        lambda s, i: s.record_preprocessing_job(
            PROJECT, "j", MISSING, output_dataset={"name": "derived", "data_type": "Tabular"}
        ),
        "input_dataset_id",
        "no dataset",
    ),
    (
        "tag-unknown-entity",
        lambda s, i: s.tag("widget", i["experiment_id"], "x"),
        "entity_type",
        "must be one of",
    ),
    ("tag-missing-entity", lambda s, i: s.tag("experiment", MISSING, "x"), "entity_id", "no experiment"),
    ("tag-blank", lambda s, i: s.tag("experiment", i["experiment_id"], [" "]), "tags", "must not be empty"),
]


@pytest.mark.parametrize("call, field, reason", [pytest.param(c, f, r, id=i) for i, c, f, r in STORE_CASES])
def test_store_refuses_bad_input_and_writes_nothing(store, call, field, reason):
    ids = seed(store)
    before = row_counts(store.engine)
    with pytest.raises(MLTrackError) as info:
        call(store, ids)
    assert_names(info.value, field, reason)
    assert_nothing_written(before, row_counts(store.engine))


# ------------------------------------------------------------------------------ operators and @task.mltrack
DAG_CASES = [
    # (case: DAG mltrack_bad_<case> in input_dags/, field, text of the error line)
    ("dataset_data_type", "data_type", "data_type='Spreadsheet': must be one of"),
    ("dataset_size_nan", "size_bytes", "size_bytes='NaN': must be an integer"),
    ("dataset_injected_type", "data_type", 'data_type="\'; DROP TABLE metrics; --": must be one of'),
    ("model_blank_name", "name", "name='   ': must not be empty"),
    ("model_schema_json", "input_schema", "is neither JSON nor a Python literal"),
    ("experiment_json", "hyperparameters", "is neither JSON nor a Python literal"),
    ("experiment_missing_model", "model_id", "model_id=999999: no model with this id"),
    ("experiment_status", "status", "status='Exploded': a new experiment starts as Pending or Running"),
    ("experiment_huge_params", "hyperparameters", "bytes of JSON; at most 65,536 allowed"),
    ("log_split", "evaluation_set", "evaluation_set='holdout': must be one of"),
    ("log_step", "step", "step=-1: must be >= 0"),
    ("log_missing_experiment", "experiment_id", "experiment_id=999999"),
    ("status_illegal_move", "status", "status='Running': experiment"),
    ("deploy_over_100", "traffic_percentage", "traffic_percentage=150: must be between 0 and 100"),
    ("deploy_nan", "traffic_percentage", "traffic_percentage=nan: must be a finite number"),
    ("job_missing_input", "input_dataset_id", "input_dataset_id=999999: no dataset with this id"),
    ("job_nan_parameter", "parameters.threshold", "must be finite"),
    ("decorator_json", "hyperparameters", "is not valid JSON"),
    ("decorator_split", "evaluation_set", "evaluation_set='holdout': must be one of"),
    ("decorator_missing_model", "model_id", "model_id=999999: no model with this id"),
    ("decorator_nan_param", "hyperparameters.lr", "must be finite"),
    ("decorator_long_name", "experiment", "is 300 characters long; at most 255 allowed"),
    ("decorator_foreign_dataset", "dataset_id", "belongs to project "),
]
_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): ", re.M)
_ERROR_LINE = re.compile(r"^airflow_mltrack\.errors\.(?:MLTrackError|NotFoundError): (.*)$", re.M)


@pytest.mark.airflow
@pytest.mark.parametrize("case, field, message", DAG_CASES, ids=[c[0] for c in DAG_CASES])
def test_task_fails_naming_the_field_and_writes_nothing(tracking_pg, capfd, case, field, message):
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(tracking_pg)
    ids = seed(store)
    before = row_counts(store.engine)
    capfd.readouterr()
    result = run_dag(f"mltrack_bad_{case}", **ids)
    log = capfd.readouterr().out
    assert result["tis"] == {"t": "failed"}, result
    errors = _ERROR_LINE.findall(log)
    assert errors, f"no MLTrackError in the task log:\n{log[-3000:]}"
    assert errors[-1].startswith(f"{field}="), errors[-1]
    assert message in errors[-1], errors[-1]
    # The task failed on the MLTrackError (a database error may only appear as its chained cause).
    assert _RAISED.findall(log)[-1].startswith("airflow_mltrack.errors."), _RAISED.findall(log)
    assert_nothing_written(before, row_counts(store.engine))


# ------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def cli_store_url(tmp_path_factory) -> str:
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.engine import dispose_engines
    from airflow_mltrack.store.migrations import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'mltrack.db'}"
    upgrade(url)
    seed(TrackingStore.from_url(url))
    dispose_engines()
    return url


_BACKFILL = ["backfill", "--dag-id", "d", "--task-id", "t", "--project", PROJECT]
CLI_CASES = [
    # (id, argv (URL appended), option named, value named)
    ("url-malformed", ["db", "upgrade", "--url", "not-a-url"], "--url", "not a SQLAlchemy URL"),
    ("revision-unknown", ["db", "upgrade", "nosuchrev"], "REVISION", "'nosuchrev'"),
    ("downgrade-unknown", ["db", "downgrade", "nosuchrev"], "REVISION", "'nosuchrev'"),
    ("from-not-a-date", [*_BACKFILL, "--from", "notadate", "--to", "2026-01-02"], "--from", "'notadate'"),
    ("to-not-a-date", [*_BACKFILL, "--from", "2026-01-01", "--to", "2026-13-45"], "--to", "'2026-13-45'"),
    ("to-before-from", [*_BACKFILL, "--from", "2026-02-01", "--to", "2026-01-01"], "--to", "on or after"),
    (
        "unknown-split",
        [*_BACKFILL, "--from", "2026-01-01", "--to", "2026-01-02", "--evaluation-set", "holdout"],
        "--evaluation-set",
        "'holdout'",
    ),
    (
        "model-id-text",
        [*_BACKFILL, "--from", "2026-01-01", "--to", "2026-01-02", "--model-id", "abc"],
        "--model-id",
        "'abc'",
    ),
    (
        "model-id-zero",
        [*_BACKFILL, "--from", "2026-01-01", "--to", "2026-01-02", "--model-id", "0", "--dataset-id", "1"],
        "--model-id",
        "0: must be a positive integer id",
    ),
    (
        "model-without-dataset",
        [*_BACKFILL, "--from", "2026-01-01", "--to", "2026-01-02", "--model-id", "3"],
        "--model-id",
        "give both",
    ),
    (
        "blank-project",
        [
            "backfill",
            "--dag-id",
            "d",
            "--task-id",
            "t",
            "--project",
            " ",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
        ],
        "--project",
        "' ': is required",
    ),
    (
        "unknown-source",
        [*_BACKFILL, "--from", "2026-01-01", "--to", "2026-01-02", "--source", "ftp"],
        "--source",
        "'ftp'",
    ),
]


@pytest.mark.parametrize("argv, option, detail", [pytest.param(a, o, d, id=i) for i, a, o, d in CLI_CASES])
def test_cli_usage_error_names_the_option_and_writes_nothing(cli_store_url, argv, option, detail):
    from click.testing import CliRunner
    from sqlalchemy import create_engine

    from airflow_mltrack.cli import cli

    engine = create_engine(cli_store_url)
    before = row_counts(engine)
    args = argv if "--url" in argv else [*argv, "--url", cli_store_url]
    result = CliRunner().invoke(cli, args)
    output = result.output
    assert result.exit_code == 2, (result.exit_code, output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # a usage error, not a traceback
    assert f"Invalid value for '{option}'" in output, output
    assert detail in output, output
    assert_nothing_written(before, row_counts(engine))
    engine.dispose()


# ------------------------------------------------------------------------------ JSON API
@pytest.fixture(scope="module")
def api(pg_server, pg_template, tmp_path_factory):
    """(client, admin headers, ids, engine) on a seeded PostgreSQL tracking store."""
    from sqlalchemy import create_engine

    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.engine import dispose_engines

    enable_auth(tmp_path_factory.mktemp("auth"))
    name = f"bad_api_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    ids = seed(TrackingStore.from_url(url))
    engine = create_engine(url)
    with mltrack_client(url) as client:
        yield client, {"Authorization": f"Bearer {token()}"}, ids, engine
    engine.dispose()
    dispose_engines()
    pg_server.drop_database(name)


API_CASES = [
    # (path, status, field named)
    ("/mltrack/api/experiments?status=Exploded", 422, "status"),
    ("/mltrack/api/experiments?sort=holdout/accuracy", 422, "sort"),
    ("/mltrack/api/experiments?sort=accuracy", 422, "sort"),
    ("/mltrack/api/experiments?param=lr", 422, "param"),
    ("/mltrack/api/experiments?param=lr=NaN", 422, "hyperparameters.lr"),
    ("/mltrack/api/experiments?project=a%00b", 422, "project"),
    ("/mltrack/api/experiments?tag=%00", 422, "tag"),
    ("/mltrack/api/experiments?limit=100000", 422, "limit"),
    ("/mltrack/api/experiments?offset=-1", 422, "offset"),
    ("/mltrack/api/experiments?order=sideways", 422, "order"),
    ("/mltrack/api/experiments/999999", 404, "experiment_id"),
    ("/mltrack/api/experiments/99999999999", 422, "experiment_id"),
    ("/mltrack/api/experiments/abc", 422, "experiment_id"),
    ("/mltrack/api/experiments/-5/curves", 422, "experiment_id"),
    ("/mltrack/api/compare?ids=1", 422, "ids"),
    ("/mltrack/api/compare?ids=1,x", 422, "ids"),
    ("/mltrack/api/compare?ids=1,999999", 404, "ids"),
    ("/mltrack/api/leaderboard?project=bad-input&metric=acc%00", 422, "metric"),
    (
        "/mltrack/api/leaderboard?project=bad-input&metric=accuracy&evaluation_set=holdout",
        422,
        "evaluation_set",
    ),
    ("/mltrack/api/leaderboard?project=bad-input&metric=accuracy&mode=median", 422, "mode"),
    ("/mltrack/api/leaderboard?project=nope&metric=accuracy", 404, "project"),
    ("/mltrack/api/leaderboard?metric=accuracy", 422, "project"),
    ("/mltrack/api/datasets/999999/lineage", 404, "dataset_id"),
    ("/mltrack/api/models?project=nope", 404, "project"),
    ("/mltrack/api/deployments?project=nope", 404, "project"),
    ("/mltrack/experiments?status=Exploded", 422, "status"),
    ("/mltrack/experiments/999999", 404, "experiment_id"),
]


def _fields(response: Any) -> list[str]:
    body = response.json()
    if "field" in body:
        return [body["field"]]
    return [str(err["loc"][-1]) for err in body.get("detail", [])]


@pytest.mark.postgres
@pytest.mark.parametrize(
    "path, status, field", API_CASES, ids=[c[0].removeprefix("/mltrack") for c in API_CASES]
)
def test_api_refuses_naming_the_field_and_writes_nothing(api, path, status, field):
    client, admin, _, engine = api
    before = row_counts(engine)
    response = client.get(path, headers=admin)
    assert response.status_code == status, (response.status_code, response.text[:500])
    if "/api/" in path:
        assert field in _fields(response), response.text[:500]
    else:  # an HTML error page names the field too
        assert response.headers["content-type"].startswith("text/html")
        assert f"{field}=" in response.text, response.text[:2000]
    assert_nothing_written(before, row_counts(engine))


# ------------------------------------------------------------------------------ injection-looking strings
def _tables_intact(engine: Any, before: dict[str, int]) -> None:
    after = row_counts(engine)
    assert TRACKING_TABLES <= set(after), set(after)
    assert after["metrics"] == before["metrics"]


def test_injection_is_a_harmless_name_in_the_store(store):
    ids = seed(store)
    before = row_counts(store.engine)
    dataset_id = store.register_dataset(INJECTION, INJECTION, "Tabular", description=INJECTION)
    store.log_hyperparameters(ids["experiment_id"], {INJECTION: INJECTION})
    assert store.get_dataset(dataset_id)["name"] == INJECTION
    assert store.get_project(INJECTION)["name"] == INJECTION
    assert store.get_experiment(ids["experiment_id"])["hyperparameters"][INJECTION] == INJECTION
    assert store.list_experiments(project=INJECTION, tag=INJECTION, dag_id=INJECTION) == []
    [found] = store.list_experiments(hyperparameters={INJECTION: INJECTION})
    assert found["experiment_id"] == ids["experiment_id"]
    with pytest.raises(MLTrackError, match="project"):
        store.leaderboard(INJECTION + "x", "accuracy")
    _tables_intact(store.engine, before)


@pytest.mark.airflow
def test_injection_is_a_harmless_name_through_an_operator(tracking_pg):
    from airflow_mltrack.store import TrackingStore

    store = TrackingStore.from_url(tracking_pg)
    seed(store)
    before = row_counts(store.engine)
    result = run_dag("mltrack_injected_name")
    assert result["state"] == "success", result
    [dataset] = store.list_datasets(INJECTION)
    assert (dataset["name"], dataset["project"]) == (INJECTION, INJECTION)
    _tables_intact(store.engine, before)


@pytest.mark.postgres
def test_injection_in_api_filters_and_cli(api, cli_store_url):
    from urllib.parse import quote

    from click.testing import CliRunner
    from sqlalchemy import create_engine

    from airflow_mltrack.cli import cli

    client, admin, _, engine = api
    before = row_counts(engine)
    q = quote(INJECTION)
    listing = client.get(
        f"/mltrack/api/experiments?project={q}&dag_id={q}&tag={q}&param={q}=1&sort=test/{q}", headers=admin
    )
    assert listing.status_code == 200 and listing.json()["total"] == 0, listing.text
    assert client.get(f"/mltrack/api/models?project={q}", headers=admin).status_code == 404
    page = client.get(f"/mltrack/experiments?project={q}", headers=admin)
    assert page.status_code == 200, page.text[:500]
    _tables_intact(engine, before)

    sqlite = create_engine(cli_store_url)
    before = row_counts(sqlite)
    result = CliRunner().invoke(
        cli,
        [*_BACKFILL[:2], INJECTION, "--task-id", INJECTION, "--project", INJECTION, "--from", "2026-01-01"]
        + ["--to", "2026-01-02", "--source", "metadata-db", "--json", "--url", cli_store_url],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert '"runs": 0' in result.output
    _tables_intact(sqlite, before)
    sqlite.dispose()
