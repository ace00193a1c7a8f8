"""The test PostgreSQL server itself: real, isolated per database, and gone after stop()."""

from __future__ import annotations

import os
import socket

import pytest
import sqlalchemy as sa

from tests.support.pgserver import ENV_URL, TempPostgres


def test_server_is_real_postgresql_15_or_newer(pg_server: TempPostgres):
    engine = sa.create_engine(pg_server.url())
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version()")).scalar_one()
            version_num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
            max_connections = int(conn.execute(sa.text("SHOW max_connections")).scalar_one())
    finally:
        engine.dispose()
    assert version.startswith("PostgreSQL ")
    assert version_num >= 150000, version
    if not pg_server.is_external:
        assert max_connections >= 200


def test_databases_are_isolated(pg_server: TempPostgres, request: pytest.FixtureRequest):
    names = [f"iso_a_{os.getpid()}", f"iso_b_{os.getpid()}"]
    for name in names:
        pg_server.drop_database(name)
        pg_server.create_database(name)
        request.addfinalizer(lambda name=name: pg_server.drop_database(name))

    pg_server.psql("CREATE TABLE only_in_a (id int)", dbname=names[0])
    pg_server.psql("INSERT INTO only_in_a VALUES (1), (2)", dbname=names[0])

    assert pg_server.psql("SELECT count(*) FROM only_in_a", dbname=names[0]) == [(2,)]
    assert pg_server.psql("SELECT to_regclass('only_in_a')", dbname=names[1]) == [(None,)]


def test_pg_database_fixture_gives_an_empty_database(pg_database: str, pg_server: TempPostgres):
    engine = sa.create_engine(pg_database)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(sa.text("SELECT current_database()")).scalar_one()
                == pg_database.rsplit("/", 1)[1]
            )
            tables = sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()
    assert tables == []


@pytest.mark.skipif(bool(os.environ.get(ENV_URL)), reason=f"{ENV_URL} set: no server is started here")
def test_stop_shuts_the_server_down_and_removes_its_directory():
    pg = TempPostgres()
    with pg:
        port, base_dir = pg.port, pg.base_dir
        assert pg.psql("SELECT 1") == [(1,)]
        assert base_dir is not None and base_dir.is_dir()
    assert not base_dir.exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "server still listening after stop()"
    pg.stop()  # idempotent
