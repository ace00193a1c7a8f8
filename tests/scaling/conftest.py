"""Fixtures for the connection tests: a real PgBouncer (transaction pooling) in front of the session's
PostgreSQL server (``tests/support/pgbouncer.py``), and fresh databases reached through it."""

from __future__ import annotations

import json

import pytest

from tests.support.pgbouncer import PgBouncerServer
from tests.support.pgserver import TempPostgres

POOL_SIZE = 4  # server connections PgBouncer opens per database: well below the tests' processes


@pytest.fixture(scope="module")
def pgbouncer(pg_server: TempPostgres):
    """PgBouncer in ``pool_mode = transaction`` with ``default_pool_size`` = ``POOL_SIZE``."""
    with PgBouncerServer(pg_server, pool_mode="transaction", default_pool_size=POOL_SIZE) as bouncer:
        yield bouncer


@pytest.fixture
def bounced_db(pg_server: TempPostgres, pgbouncer: PgBouncerServer, pg_database: str, monkeypatch):
    """``(name, url)`` of a fresh, empty database, the URL through PgBouncer (with
    ``mltrack_pool_mode=transaction``); also connection ``mltrack_pgb`` (type ``mltrack``, extras ``url``
    and ``pool_mode``), as a worker would resolve it."""
    from sqlalchemy.engine import make_url

    name = make_url(pg_database).database
    url = pgbouncer.url(name, pool_mode_arg=False)
    connection = {"conn_type": "mltrack", "extra": {"url": url, "pool_mode": "transaction"}}
    monkeypatch.setenv("AIRFLOW_CONN_MLTRACK_PGB", json.dumps(connection))
    yield name, pgbouncer.url(name)  # pg_database drops it WITH (FORCE), PgBouncer's sessions too
