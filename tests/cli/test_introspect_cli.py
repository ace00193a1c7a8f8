"""``mltrack erd`` and ``mltrack integrity`` on the live schema, SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from airflow_mltrack.cli import cli
from airflow_mltrack.store import migrations
from airflow_mltrack.store.engine import dispose_engines, get_engine
from airflow_mltrack.store.introspect import erd_mermaid, integrity_report
from airflow_mltrack.store.models import Base

T = Base.metadata.tables


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def empty_db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """URL of a fresh, empty database: a SQLite file, or a PostgreSQL database (``pg_database``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mltrack.db'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    migrations.upgrade(empty_db_url)
    return empty_db_url


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def _counts(url: str) -> dict[str, int]:
    return {f"{row['table']}: {row['check']}": row["count"] for row in integrity_report(get_engine(url))}


def _seed_rows(conn: sa.Connection) -> dict[str, int]:
    pid = conn.execute(
        sa.insert(T["projects"]).values(name="p").returning(T["projects"].c.project_id)
    ).scalar()
    mid = conn.execute(
        sa.insert(T["models"])
        .values(project_id=pid, name="m", framework="sklearn")
        .returning(T["models"].c.model_id)
    ).scalar()
    did = conn.execute(
        sa.insert(T["datasets"])
        .values(project_id=pid, name="d", data_type="Tabular")
        .returning(T["datasets"].c.dataset_id)
    ).scalar()
    eid = conn.execute(
        sa.insert(T["experiments"])
        .values(project_id=pid, model_id=mid, dataset_id=did, name="e")
        .returning(T["experiments"].c.experiment_id)
    ).scalar()
    return {"project": pid, "model": mid, "dataset": did, "experiment": eid}


def _unguarded(url: str) -> sa.Engine:
    """An engine that lets rows break the rules: SQLite without FK/CHECK enforcement; PostgreSQL with the
    relevant constraints dropped (the situations ``mltrack integrity`` exists for)."""
    engine = get_engine(url)
    if engine.dialect.name == "sqlite":
        raw = sa.create_engine(url, poolclass=sa.pool.NullPool)

        @sa.event.listens_for(raw, "connect")
        def _pragmas(dbapi_connection, _record):  # noqa: ANN001
            dbapi_connection.execute("PRAGMA foreign_keys=OFF")
            dbapi_connection.execute("PRAGMA ignore_check_constraints=ON")

        return raw
    with engine.begin() as conn:
        for table, name in (
            ("metrics", "fk_metric_experiment"),
            ("experiments", "experiments_status_check"),
            ("experiments", "ck_experiments_times"),
        ):
            conn.execute(sa.text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
    return engine


def test_erd_names_every_table_and_real_cardinality(db_url: str):
    result = _invoke("erd", "--url", db_url)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("erDiagram\n")
    for table in T:
        assert f"    {table} {{" in out, table
    assert "mltrack_alembic_version" not in out
    assert 'projects ||--o{ experiments : "fk_experiment_project (project_id)"' in out
    assert "experiments ||--o{ metrics" in out
    # nullable FK: zero or one parent
    assert 'datasets |o--o{ preprocessing_jobs : "fk_prepjob_output_dataset (output_dataset_id)"' in out
    # columns with type and key markers
    assert "INTEGER project_id PK" in out
    assert "INTEGER experiment_id FK" in out
    assert "VARCHAR(255) name UK" in out  # projects.name is unique on its own


def test_erd_one_to_one_from_unique_fk_and_reflects_live_schema(db_url: str):
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE project_settings (setting_id INTEGER PRIMARY KEY, "
                "project_id INTEGER NOT NULL UNIQUE REFERENCES projects (project_id), theme VARCHAR(20))"
            )
        )
    diagram = erd_mermaid(engine)
    assert "projects ||--o| project_settings" in diagram  # unique FK column: one-to-one
    assert "INTEGER project_id FK, UK" in diagram


def test_integrity_fresh_db_is_clean(db_url: str):
    result = _invoke("integrity", "--url", db_url)
    assert result.exit_code == 0, result.output
    assert "No problems" in result.output

    result = _invoke("integrity", "--url", db_url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report and all(row["count"] == 0 for row in report)
    kinds = {row["kind"] for row in report}
    assert {"orphan", "tag", "traffic", "time", "allowed_values"} <= kinds
    # one orphan check per foreign key of the models
    n_fks = sum(len(t.foreign_key_constraints) for t in T.values())
    assert sum(row["kind"] == "orphan" for row in report) == n_fks


def test_integrity_counts_orphans_and_rule_violations(db_url: str):
    with get_engine(db_url).begin() as conn:
        ids = _seed_rows(conn)
        eid = conn.execute(
            sa.insert(T["deployment_endpoints"])
            .values(project_id=ids["project"], name="ep")
            .returning(T["deployment_endpoints"].c.endpoint_id)
        ).scalar()
        mid2 = conn.execute(
            sa.insert(T["models"])
            .values(project_id=ids["project"], name="m2", framework="sklearn")
            .returning(T["models"].c.model_id)
        ).scalar()
        # 60 + 50 active = 110 > 100 (a retired row does not count)
        conn.execute(
            sa.insert(T["endpoint_models"]),
            [
                {"endpoint_id": eid, "model_id": ids["model"], "traffic_percentage": 60.0},
                {"endpoint_id": eid, "model_id": mid2, "traffic_percentage": 50.0},
            ],
        )
        tag_id = conn.execute(sa.insert(T["tags"]).values(name="t").returning(T["tags"].c.tag_id)).scalar()
        conn.execute(
            sa.insert(T["tag_assignments"]),
            [
                {"tag_id": tag_id, "entity_type": "experiment", "entity_id": ids["experiment"]},  # fine
                {"tag_id": tag_id, "entity_type": "experiment", "entity_id": 12345},  # dangling
                {"tag_id": tag_id, "entity_type": "model", "entity_id": 777},  # dangling
            ],
        )

    raw = _unguarded(db_url)
    try:
        with raw.begin() as conn:
            conn.execute(
                sa.insert(T["metrics"]).values(
                    experiment_id=999, name="loss", value=1.0, evaluation_set="test"
                )
            )
            conn.execute(
                sa.insert(T["experiments"]).values(
                    project_id=ids["project"],
                    model_id=ids["model"],
                    dataset_id=ids["dataset"],
                    name="bad",
                    status="Exploded",
                    start_time=sa.text("CURRENT_TIMESTAMP"),
                    end_time=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                )
            )
    finally:
        if raw is not get_engine(db_url):
            raw.dispose()
        dispose_engines()

    counts = _counts(db_url)
    expected = {
        "metrics: orphaned rows: fk_metric_experiment (experiment_id -> experiments.experiment_id)": 1,
        "deployment_endpoints: endpoints whose active traffic sums past 100": 1,
        "tag_assignments: tag assignments pointing at no row": 2,
        "experiments: status outside the allowed values": 1,
        "experiments: end_time before start_time": 1,
    }
    assert {k: v for k, v in counts.items() if v} == expected

    result = _invoke("integrity", "--url", db_url, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    tag_row = next(r for r in report if r["kind"] == "tag")
    assert tag_row["detail"] == "experiment: 1, model: 1"

    result = _invoke("integrity", "--url", db_url)
    assert result.exit_code == 1
    assert "fk_metric_experiment" in result.output
    assert "problem row(s)" in result.output

    # Retiring one endpoint model brings the endpoint back to 60%.
    with get_engine(db_url).begin() as conn:
        conn.execute(
            sa.update(T["endpoint_models"])
            .where(T["endpoint_models"].c.model_id == mid2)
            .values(retired_at=sa.text("CURRENT_TIMESTAMP"))
        )
    assert _counts(db_url)["deployment_endpoints: endpoints whose active traffic sums past 100"] == 0


def test_integrity_on_uninitialized_db_says_so(empty_db_url: str):
    result = _invoke("integrity", "--url", empty_db_url)
    assert result.exit_code == 1
    assert "mltrack db upgrade" in result.output
