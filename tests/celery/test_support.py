"""The test support of the Celery tests: a throwaway Redis, and AirflowCluster's executor arguments."""

from __future__ import annotations

import os

import pytest

from tests.support.airflow_cluster import AirflowCluster
from tests.support.pgserver import free_port
from tests.support.redis import TempRedis


def test_temp_redis_answers_keeps_nothing_on_disk_and_cleans_up():
    server = TempRedis(external_url="")
    with server:
        assert server.command("PING") == b"+PONG"
        assert server.url() == f"redis://127.0.0.1:{server.port}/0"
        assert server.command("SET", "k", "v") == b"+OK"
        assert server.command("CONFIG", "GET", "save").endswith(b"$4\r\nsave\r\n$0")  # no RDB snapshots
        assert server.command("CONFIG", "GET", "appendonly").endswith(b"no")
        base_dir, pid = server.base_dir, server.process.pid
        assert base_dir is not None and base_dir.is_dir()
    assert not base_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent


def test_external_redis_url_that_does_not_answer_names_the_variable():
    server = TempRedis(external_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RuntimeError, match="MLTRACK_TEST_REDIS_URL=redis://127.0.0.1:"):
        server.start()


def test_cluster_refuses_an_unknown_executor_and_celery_without_a_broker(tmp_path):
    with pytest.raises(ValueError, match="executor must be one of .* not 'KubernetesExecutor'"):
        AirflowCluster(tmp_path, tmp_path, "sqlite://", secret="s", executor="KubernetesExecutor")
    with pytest.raises(ValueError, match="needs broker_url and metadata_url .*broker_url=None"):
        AirflowCluster(
            tmp_path, tmp_path, "sqlite://", secret="s", executor="CeleryExecutor", metadata_url="sqlite://"
        )
    assert not (tmp_path / "airflow_home").exists()  # nothing created before the arguments are checked


def test_cluster_celery_settings(tmp_path):
    cluster = AirflowCluster(
        tmp_path,
        tmp_path,
        "sqlite://",
        secret="s",
        executor="CeleryExecutor",
        metadata_url="postgresql+psycopg://u@h/meta",
        broker_url="redis://127.0.0.1:1/0",
        worker_concurrency=3,
        extra_env={"AIRFLOW__CELERY__WORKER_CONCURRENCY": "5"},
    )
    env = cluster.env
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg://u@h/meta"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg://u@h/meta"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:1/0"
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "5"  # extra_env wins, as before
    with pytest.raises(RuntimeError, match="start_worker needs executor CeleryExecutor"):
        (tmp_path / "local").mkdir()
        AirflowCluster(tmp_path / "local", tmp_path, "sqlite://", secret="s").start_worker()
