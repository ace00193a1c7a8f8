"""Alembic migrations on SQLite and PostgreSQL: head matches the models, names match seed 002,
downgrade removes everything, ``mltrack db ...`` works and ``db check`` reports drift."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from airflow_mltrack.cli import cli
from airflow_mltrack.store import migrations
from airflow_mltrack.store.engine import get_engine
from airflow_mltrack.store.models import Base
from tests.support.seed import SEED_INDEXES

# Seed 002's constraint names (its own, and PostgreSQL's generated names for its unnamed UNIQUE/CHECK).
SEED_FOREIGN_KEYS = {
    # name: (table, referred table, ON DELETE)
    "fk_dataset_project": ("datasets", "projects", "CASCADE"),
    "fk_model_project": ("models", "projects", "CASCADE"),
    "fk_experiment_project": ("experiments", "projects", "CASCADE"),
    "fk_experiment_model": ("experiments", "models", "RESTRICT"),
    "fk_experiment_dataset": ("experiments", "datasets", "RESTRICT"),
    "fk_metric_experiment": ("metrics", "experiments", "CASCADE"),
}
SEED_UNIQUES = {
    "projects_name_key": "projects",
    "uq_dataset_project_name_version": "datasets",
    "uq_model_project_name_version": "models",
    "uq_metric_experiment_name_step_evalset": "metrics",
}
SEED_CHECKS = {
    "projects_status_check": "projects",
    "datasets_data_type_check": "datasets",
    "experiments_status_check": "experiments",
    "metrics_evaluation_set_check": "metrics",
}
TOUCHED_TABLES = (
    "projects",
    "datasets",
    "models",
    "experiments",
    "preprocessing_jobs",
    "deployment_endpoints",
)


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


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _tables(url: str) -> set[str]:
    return set(sa.inspect(get_engine(url)).get_table_names())


def test_upgrade_head_has_no_drift(empty_db_url: str):
    assert migrations.current_revision(empty_db_url) is None
    migrations.upgrade(empty_db_url)
    assert migrations.current_revision(empty_db_url) == migrations.head_revision()
    assert migrations.check_drift(empty_db_url) == []
    assert _tables(empty_db_url) == set(Base.metadata.tables) | {migrations.VERSION_TABLE}
    assert "alembic_version" not in _tables(empty_db_url)
    engine = get_engine(empty_db_url)
    if engine.dialect.name == "sqlite":
        # env.py turns foreign keys off for the migration (batch mode) and back on afterwards
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_seed_names_present(empty_db_url: str):
    migrations.upgrade(empty_db_url)
    inspector = sa.inspect(get_engine(empty_db_url))
    indexes = {ix["name"] for t in inspector.get_table_names() for ix in inspector.get_indexes(t)}
    assert set(SEED_INDEXES) <= indexes, set(SEED_INDEXES) - indexes

    for name, (table, referred, ondelete) in SEED_FOREIGN_KEYS.items():
        fks = {fk["name"]: fk for fk in inspector.get_foreign_keys(table)}
        assert name in fks, (table, name, list(fks))
        assert fks[name]["referred_table"] == referred
        assert (fks[name]["options"].get("ondelete") or "").upper() == ondelete, fks[name]
    for name, table in SEED_UNIQUES.items():
        assert name in {uc["name"] for uc in inspector.get_unique_constraints(table)}, name
    for name, table in SEED_CHECKS.items():
        assert name in {ck["name"] for ck in inspector.get_check_constraints(table)}, name
    if inspector.dialect.name == "postgresql":
        for table in ("projects", "datasets", "models", "experiments", "metrics"):
            assert inspector.get_pk_constraint(table)["name"] == f"{table}_pkey"


def test_unique_metric_key_treats_null_step_as_equal(empty_db_url: str):
    """NULLS NOT DISTINCT (PostgreSQL) / uq_metric_stepless (SQLite): one row per step-less metric."""
    migrations.upgrade(empty_db_url)
    engine = get_engine(empty_db_url)
    t = Base.metadata.tables
    with engine.begin() as conn:
        pid = conn.execute(
            sa.insert(t["projects"]).values(name="p").returning(t["projects"].c.project_id)
        ).scalar()
        mid = conn.execute(
            sa.insert(t["models"])
            .values(project_id=pid, name="m", framework="sklearn")
            .returning(t["models"].c.model_id)
        ).scalar()
        did = conn.execute(
            sa.insert(t["datasets"])
            .values(project_id=pid, name="d", data_type="Tabular")
            .returning(t["datasets"].c.dataset_id)
        ).scalar()
        eid = conn.execute(
            sa.insert(t["experiments"])
            .values(project_id=pid, model_id=mid, dataset_id=did, name="e")
            .returning(t["experiments"].c.experiment_id)
        ).scalar()
        row = {"experiment_id": eid, "name": "acc", "value": 0.9, "step": None, "evaluation_set": "test"}
        conn.execute(sa.insert(t["metrics"]).values(**row))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(t["metrics"]).values(**row))


def test_downgrade_base_removes_everything_and_upgrade_again(empty_db_url: str):
    migrations.upgrade(empty_db_url)
    migrations.downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) - {migrations.VERSION_TABLE} == set()
    assert migrations.current_revision(empty_db_url) is None
    engine = get_engine(empty_db_url)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            functions = conn.execute(
                sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'mltrack_touch_updated_at'")
            ).scalar()
            triggers = conn.execute(
                sa.text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'trg_%_touch_updated_at'")
            ).scalar()
        assert (functions, triggers) == (0, 0)

    migrations.upgrade(empty_db_url)
    assert migrations.current_revision(empty_db_url) == migrations.head_revision()
    assert migrations.check_drift(empty_db_url) == []


def test_db_cli_upgrade_current_downgrade(empty_db_url: str):
    result = _run("db", "current", "--url", empty_db_url)
    assert result.exit_code == 0 and "not initialized" in result.output

    result = _run("db", "upgrade", "--url", empty_db_url)
    assert result.exit_code == 0, result.output
    assert migrations.head_revision() in result.output

    result = _run("db", "current", "--url", empty_db_url)
    assert result.exit_code == 0 and f"{migrations.head_revision()} (head)" in result.output

    result = _run("db", "check", "--url", empty_db_url)
    assert result.exit_code == 0 and "No drift" in result.output

    # downgrade needs an explicit revision
    result = CliRunner().invoke(cli, ["db", "downgrade", "--url", empty_db_url])
    assert result.exit_code == 2
    assert migrations.current_revision(empty_db_url) == migrations.head_revision()

    result = _run("db", "downgrade", "base", "--url", empty_db_url)
    assert result.exit_code == 0, result.output
    assert _tables(empty_db_url) - {migrations.VERSION_TABLE} == set()


def test_db_check_reports_drift(empty_db_url: str):
    migrations.upgrade(empty_db_url)
    engine = get_engine(empty_db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE experiments DROP COLUMN notes"))
        conn.execute(sa.text("DROP INDEX idx_metrics_name"))
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE metrics ALTER COLUMN value TYPE NUMERIC(18, 9)"))

    result = CliRunner().invoke(cli, ["db", "check", "--url", empty_db_url])
    assert result.exit_code == 1, result.output
    assert "missing column experiments.notes" in result.output
    assert "missing index idx_metrics_name" in result.output
    if engine.dialect.name == "postgresql":
        assert (
            "type of metrics.value: DOUBLE PRECISION in models, NUMERIC(18, 9) in database" in result.output
        )
    assert "No drift" not in result.output


def test_check_drift_reports_partial_index_predicate(empty_db_url: str):
    migrations.upgrade(empty_db_url)
    with get_engine(empty_db_url).begin() as conn:
        conn.execute(sa.text("DROP INDEX uq_metric_stepless"))
        conn.execute(
            sa.text("CREATE UNIQUE INDEX uq_metric_stepless ON metrics (experiment_id, name, evaluation_set)")
        )
    drift = migrations.check_drift(empty_db_url)
    assert any(line.startswith("predicate of index uq_metric_stepless") for line in drift), drift


def test_store_options_resolve_through_the_hook(monkeypatch, tmp_path):
    """Without --url, --conn-id goes through MLTrackHook.resolve_url."""
    from airflow_mltrack.cli.options import resolve_url

    url = f"sqlite:///{tmp_path / 'via_hook.db'}"
    seen = []

    def fake_resolve_url(conn_id: str) -> str:
        seen.append(conn_id)
        return url

    import airflow_mltrack.hooks as hooks

    monkeypatch.setattr(hooks.MLTrackHook, "resolve_url", staticmethod(fake_resolve_url))
    assert resolve_url("sqlite:///explicit.db", "ignored") == "sqlite:///explicit.db"
    assert resolve_url(None, "my_conn") == url
    result = _run("db", "upgrade", "--conn-id", "my_conn")
    assert result.exit_code == 0, result.output
    assert seen == ["my_conn", "my_conn"]
    assert migrations.current_revision(url) == migrations.head_revision()


@pytest.mark.postgres
def test_updated_at_trigger_moves_on_raw_update(pg_database: str):
    migrations.upgrade(pg_database)
    engine = get_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO projects (name) VALUES ('p')"))
        before = conn.execute(sa.text("SELECT updated_at FROM projects WHERE name = 'p'")).scalar_one()
    time.sleep(0.01)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE projects SET description = 'raw' WHERE name = 'p'"))
        after = conn.execute(sa.text("SELECT updated_at FROM projects WHERE name = 'p'")).scalar_one()
    assert after > before

    # An UPDATE that sets updated_at itself keeps its value (backfills, the ORM's onupdate).
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE projects SET updated_at = '2001-01-01T00:00:00Z' WHERE name = 'p'"))
        kept = conn.execute(sa.text("SELECT extract(year FROM updated_at) FROM projects")).scalar_one()
    assert int(kept) == 2001

    with engine.connect() as conn:
        triggers = set(
            conn.execute(
                sa.text("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'trg_%_touch_updated_at'")
            ).scalars()
        )
    assert triggers == {f"trg_{t}_touch_updated_at" for t in TOUCHED_TABLES}


def test_upgrade_turns_stored_nan_into_what_plain_readers_understand(empty_db_url: str):
    """A store written before NaN was NULL on SQLite (it held the text 'NaN'): after `mltrack db upgrade` a
    sqlite3/psycopg reader gets a number or NULL, the store still float('nan'), and downgrading restores it."""
    import math

    from airflow_mltrack.store import TrackingStore

    migrations.upgrade(empty_db_url, "0004")
    old = TrackingStore(get_engine(empty_db_url), check_revision=False)
    dataset = old.register_dataset("churn", "customers", "Tabular")
    model = old.register_model("churn", "mlp", "torch")
    experiment = old.create_experiment("churn", "lr-10", model, dataset)
    old.log_metrics(experiment, {"loss": [0.9, float("nan")]})

    def plain() -> list:
        raw = get_engine(empty_db_url).raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT value FROM metrics ORDER BY step")
            values = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT value, max_value FROM metric_latest")
            return values + [value for row in cursor.fetchall() for value in row]
        finally:
            raw.close()

    _run("db", "upgrade", "--url", empty_db_url)
    assert all(value is None or isinstance(value, float) for value in plain()), plain()
    history = TrackingStore.from_url(empty_db_url).metric_history(experiment, "loss")
    assert history[0]["value"] == 0.9 and math.isnan(history[1]["value"])
    migrations.downgrade(empty_db_url, "0004")
    assert len(plain()) == 4 and all(v == 0.9 or math.isnan(float(v)) for v in plain())


def test_tag_values_revision_keeps_labels_both_ways(empty_db_url: str):
    """0006 adds tag_assignments.value: labels written before stay labels; a downgrade drops the column
    (the values are lost), keeps every assignment, the table's CHECK and index; upgrading again is clean."""
    from airflow_mltrack.store import TrackingStore
    from airflow_mltrack.store.reads.experiment_list import ExperimentFilter, experiment_page

    def found(store: TrackingStore, text: str) -> set[int]:
        page = experiment_page(store, ExperimentFilter(search=text))
        return {row["experiment_id"] for row in page["items"]}

    migrations.upgrade(empty_db_url, "0005")
    old = TrackingStore(get_engine(empty_db_url), check_revision=False)
    dataset = old.register_dataset("churn", "customers", "Tabular")
    model = old.register_model("churn", "mlp", "torch")
    experiment = old.create_experiment("churn", "lr-10", model, dataset, tags=["baseline", "gpu"])
    old.tag("dataset", dataset, ["raw"])

    assert _run("db", "upgrade", "--url", empty_db_url).exit_code == 0
    assert migrations.check_drift(empty_db_url) == []
    new = TrackingStore.from_url(empty_db_url)
    assert new.tag_values("experiment", experiment) == {"baseline": None, "gpu": None}
    assert new.tag_values("dataset", dataset) == {"raw": None}
    assert found(new, "tags.baseline IS NOT NULL") == {experiment}
    assert found(new, "tags.baseline = 'baseline'") == set()  # a label has no value
    new.set_tag("experiment", experiment, "team", "vision")
    assert found(new, "tags.team = 'vision'") == {experiment}

    migrations.downgrade(empty_db_url, "0005")
    inspector = sa.inspect(get_engine(empty_db_url))
    assert "value" not in {c["name"] for c in inspector.get_columns("tag_assignments")}
    assert "idx_tag_assignments_entity" in {ix["name"] for ix in inspector.get_indexes("tag_assignments")}
    checks = {ck["name"] for ck in inspector.get_check_constraints("tag_assignments")}
    assert "ck_tag_assignments_entity_type" in checks
    assert old.tags_of("experiment", experiment) == ["baseline", "gpu", "team"]  # kept, as labels

    migrations.upgrade(empty_db_url)
    assert migrations.check_drift(empty_db_url) == []
    assert TrackingStore.from_url(empty_db_url).tag_values("experiment", experiment) == {
        "baseline": None,
        "gpu": None,
        "team": None,  # its value went with the column
    }


_UPGRADE = """
import os, sys, time
from airflow_mltrack.store import migrations
gate, url = sys.argv[1], sys.argv[2]
while not os.path.exists(gate):
    time.sleep(0.005)
migrations.upgrade(url)
"""


def test_parallel_upgrades_of_a_fresh_database_wait_for_each_other(empty_db_url: str, tmp_path):
    """Several deploy jobs (or parallel tasks) run the upgrade of one fresh store at once."""
    import subprocess
    import sys

    gate = tmp_path / "go"
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", _UPGRADE, str(gate), empty_db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    gate.touch()
    for job in jobs:
        _out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
    assert migrations.current_revision(empty_db_url) == migrations.head_revision()
    assert migrations.check_drift(empty_db_url) == []
