"""How engines keep their connections: the ``pool_mode`` extra / ``mltrack_pool_mode`` URL argument, the
task-process pool of one, and their refusals (no server needed: engines connect lazily)."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection
from sqlalchemy import event
from sqlalchemy.pool import NullPool, QueuePool

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.hooks.connection_urls import url_from_connection
from airflow_mltrack.store.engine import get_engine, release_task_engines

PG = "postgresql+psycopg://u:secret@db.example:5432/track"


def _conn(extra: dict) -> Connection:
    return Connection(conn_id="mltrack_x", conn_type="mltrack", extra=json.dumps(extra))


def test_transaction_mode_is_nullpool_without_prepared_statements():
    engine = get_engine(f"{PG}?mltrack_pool_mode=transaction")
    assert isinstance(engine.pool, NullPool)
    assert "mltrack_pool_mode" not in engine.url.query  # ours: never sent to libpq
    assert "mltrack_pool_mode" not in engine.dialect.create_connect_args(engine.url)[1]


def test_engine_connect_arguments_per_mode():
    """The arguments psycopg gets: application_name always, prepare_threshold=None in transaction mode."""
    seen = {}
    for mode in ("session", "transaction"):
        engine = get_engine(f"{PG}?mltrack_pool_mode={mode}")
        captured: dict = {}  # what the dialect hands to psycopg.connect, read before it connects

        @event.listens_for(engine, "do_connect")
        def capture(dialect, conn_rec, cargs, cparams, captured=captured):  # noqa: ANN001, ARG001
            captured.update(cparams)
            raise RuntimeError("stop before the network")

        with pytest.raises(Exception, match="stop before the network"):
            engine.connect()
        seen[mode] = captured
    assert seen["session"]["application_name"] == "mltrack"
    assert seen["session"]["connect_timeout"] == 10
    assert "prepare_threshold" not in seen["session"]
    assert seen["transaction"]["prepare_threshold"] is None
    assert seen["transaction"]["application_name"] == "mltrack"


def test_url_application_name_wins():
    engine = get_engine(f"{PG}?application_name=trainer")
    captured: dict = {}

    @event.listens_for(engine, "do_connect")
    def capture(dialect, conn_rec, cargs, cparams):  # noqa: ANN001, ARG001
        captured.update(cparams)
        raise RuntimeError("stop")

    with pytest.raises(Exception, match="stop"):
        engine.connect()
    assert captured["application_name"] == "trainer"


def test_task_process_engine_keeps_one_connection_and_is_released():
    engine = get_engine(PG, task_process=True)
    assert isinstance(engine.pool, QueuePool)
    assert (engine.pool.size(), engine.pool._max_overflow) == (1, 0)
    assert get_engine(PG) is engine  # the first call for a URL decides, in this process
    assert release_task_engines() == 1
    assert release_task_engines() == 0
    other = get_engine(PG)  # after the task: a new engine, pooled as any process's
    assert other is not engine
    assert (other.pool.size(), other.pool._max_overflow) == (5, 5)


def test_transaction_mode_in_a_task_process_is_still_nullpool():
    engine = get_engine(f"{PG}?mltrack_pool_mode=transaction", task_process=True)
    assert isinstance(engine.pool, NullPool)
    assert release_task_engines() == 0  # nothing pooled, nothing to close


@pytest.mark.parametrize("mode", ["statement", "Transaction", "none"])
def test_unknown_pool_mode_in_url_is_refused(mode):
    with pytest.raises(
        MLTrackError, match=rf"mltrack_pool_mode='{mode}': expected one of session, transaction"
    ):
        get_engine(f"{PG}?mltrack_pool_mode={mode}")


def test_pool_mode_on_sqlite_url_is_refused(tmp_path):
    with pytest.raises(MLTrackError, match="PostgreSQL only"):
        get_engine(f"sqlite:///{tmp_path / 'x.db'}?mltrack_pool_mode=transaction")


# -- the connection extra -----------------------------------------------------------------------------
def test_pool_mode_extra_with_url():
    url = url_from_connection(_conn({"url": PG, "pool_mode": "transaction"}))
    assert url.query["mltrack_pool_mode"] == "transaction"
    assert isinstance(get_engine(url.render_as_string(hide_password=False)).pool, NullPool)


def test_pool_mode_extra_with_fields_is_not_a_libpq_parameter():
    conn = Connection(
        conn_id="mltrack_x",
        conn_type="mltrack",
        host="bouncer.example",
        port=6432,
        login="u",
        password="p",
        schema="track",
        extra=json.dumps({"pool_mode": "transaction", "sslmode": "require"}),
    )
    url = url_from_connection(conn)
    assert dict(url.query) == {"sslmode": "require", "mltrack_pool_mode": "transaction"}
    assert (url.host, url.port, url.database) == ("bouncer.example", 6432, "track")


def test_session_pool_mode_extra_is_the_default_pool():
    url = url_from_connection(_conn({"url": PG, "pool_mode": "session"}))
    engine = get_engine(url.render_as_string(hide_password=False))
    assert (engine.pool.size(), engine.pool._max_overflow) == (5, 5)


@pytest.mark.parametrize("bad", ["statement", True, "pgbouncer"])
def test_bad_pool_mode_extra_names_the_field(bad):
    with pytest.raises(
        MLTrackError, match=r"extra\.pool_mode=.*connection 'mltrack_x': expected 'session' or"
    ):
        url_from_connection(_conn({"url": PG, "pool_mode": bad}))


def test_pool_mode_extra_on_sqlite_is_refused():
    with pytest.raises(MLTrackError, match=r"extra\.pool_mode='transaction'.*PostgreSQL only"):
        url_from_connection(_conn({"backend": "sqlite", "path": "/tmp/x.db", "pool_mode": "transaction"}))
