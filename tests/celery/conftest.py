"""Fixtures of the Celery tests: a throwaway Redis (the broker, ``tests/support/redis.py``) and an empty
PostgreSQL database for Airflow's metadata on the session's server."""

from __future__ import annotations

import uuid

import pytest

from tests.support.pgserver import TempPostgres
from tests.support.redis import TempRedis


@pytest.fixture(scope="module")
def redis_broker():
    """A ``TempRedis`` (no persistence), stopped after the module."""
    with TempRedis() as server:
        yield server


@pytest.fixture
def airflow_metadata_url(pg_server: TempPostgres):
    """URL of a fresh, empty database for Airflow's metadata (``airflow db migrate`` fills it), dropped after."""
    name = f"airflow_{uuid.uuid4().hex[:10]}"
    url = pg_server.create_database(name, template="template0")
    yield url
    pg_server.drop_database(name)
