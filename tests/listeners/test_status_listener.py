"""Experiment status follows the tasks: the plugin's listener and the callbacks, on real Airflow.

``dag.test()`` runs each task through the task runner in-process (``run_task_in_process``: ``run`` +
``finalize``), so the plugin's task-instance listener hooks fire, and ``DagRun.update_state`` fires the
DAG-run hooks; ``test_real_scheduler_path`` runs the same listener in real worker processes
(scheduler + DAG processor + API server, LocalExecutor), where the metadata ORM is not available.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from airflow_mltrack.errors import NotFoundError
from tests.listeners.conftest import STATUS_DAGS
from tests.support.airflow_cluster import AirflowCluster
from tests.support.pgserver import free_port


def _only(store, dag_id, run_id):
    exps = store.find_experiments(dag_id=dag_id, run_id=run_id)
    assert len(exps) == 1, exps
    return store.get_experiment(exps[0]["experiment_id"])


def test_plugin_registers_the_status_listener():
    from airflow.sdk.listener import get_listener_manager

    from airflow_mltrack.listeners import status

    assert get_listener_manager().pm.is_registered(status)


def test_retry_then_success_is_one_completed_experiment(run_dag, status_store, tmp_path, monkeypatch):
    monkeypatch.setenv("MLTRACK_STATUS_MARKER", str(tmp_path / "marker"))
    result = run_dag("mltrack_status_retry")
    print(f"dag.test mltrack_status_retry: {result.seconds:.1f}s")
    assert result.state == "success", result.tis
    assert result.tis[("train", -1)] == ("success", 2)
    exp = _only(status_store, "mltrack_status_retry", result.run_id)
    assert exp["status"] == "Completed" and exp["error"] is None
    assert exp["try_number"] == 2
    history = status_store.metric_history(exp["experiment_id"], "loss", "validation")
    assert [(r["step"], r["value"]) for r in history] == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert len(status_store.metric_history(exp["experiment_id"], "accuracy", "validation")) == 1


def test_failure_without_retries_is_failed_with_error_text(run_dag, status_store):
    result = run_dag("mltrack_status_fail")
    print(f"dag.test mltrack_status_fail: {result.seconds:.1f}s")
    assert result.state == "failed"
    exp = _only(status_store, "mltrack_status_fail", result.run_id)
    assert exp["status"] == "Failed"
    assert "diverged: loss is nan" in exp["error"] and "ValueError" in exp["error"]
    assert "task train" in exp["error"]
    # metrics logged before the error are kept (flushed on the way out)
    assert len(status_store.metric_history(exp["experiment_id"], "loss", "validation")) == 1


def test_dag_run_failing_elsewhere_leaves_a_finished_experiment_completed(run_dag, status_store):
    """train succeeded; evaluate (reading train's metrics, not its experiment) never ran: not its task."""
    result = run_dag("mltrack_status_cancel")
    print(f"dag.test mltrack_status_cancel: {result.seconds:.1f}s")
    assert result.state == "failed"
    assert result.state_of("train") == "success"
    assert result.state_of("evaluate") == "upstream_failed"
    exp = _only(status_store, "mltrack_status_cancel", result.run_id)
    assert exp["status"] == "Completed" and exp["error"] is None


def test_failure_in_another_task_group_does_not_fail_the_experiment(run_dag, status_store):
    result = run_dag("mltrack_status_groups")
    assert result.state == "failed"
    assert result.state_of("reporting.publish_report") == "failed"
    assert result.state_of("training.log_metrics") == "success"
    exp = _only(status_store, "mltrack_status_groups", result.run_id)
    assert (exp["status"], exp["error"]) == ("Completed", None)
    assert exp["end_time"] >= exp["start_time"]


def test_xcom_fed_experiment_is_not_cancelled_by_an_unrelated_branch(run_dag, status_store):
    result = run_dag("mltrack_status_xcom_fed")
    assert result.state == "failed"
    assert result.state_of("fetch_holdout") == "failed"
    assert result.state_of("compare") == "upstream_failed"
    assert result.state_of("cleanup") == "success"
    exp = _only(status_store, "mltrack_status_xcom_fed", result.run_id)
    assert (exp["status"], exp["error"]) == ("Completed", None)
    # the plain @task that wrote into it is recorded as one of its tasks
    assert member_rows(status_store, exp["experiment_id"]) == [
        ("create_experiment", -1, "creator"),
        ("train", -1, "writer"),
    ]


def test_skipped_training_is_cancelled_with_the_reason(run_dag, status_store):
    result = run_dag("mltrack_status_skip")
    assert result.state == "success"
    assert result.state_of("train") == "skipped"
    exp = _only(status_store, "mltrack_status_skip", result.run_id)
    assert exp["status"] == "Cancelled"
    assert exp["error"] == "task train (try 1) skipped: no new labelled data since the last run"
    assert exp["end_time"] >= exp["start_time"]


def member_rows(store, experiment_id):
    from sqlalchemy import select

    from airflow_mltrack.store.tables import experiment_tasks as et

    with store.engine.connect() as conn:
        rows = conn.execute(
            select(et.c.task_id, et.c.map_index, et.c.role)
            .where(et.c.experiment_id == experiment_id)
            .order_by(et.c.task_id)
        )
        return [tuple(r) for r in rows]


@pytest.fixture
def without_listener():
    """The plugin's listener unregistered from both listener managers (as if plugins were not loaded)."""
    from airflow.listeners.listener import get_listener_manager as core_manager
    from airflow.sdk.listener import get_listener_manager as sdk_manager

    from airflow_mltrack.listeners import status

    managers = [m for m in (sdk_manager(), core_manager()) if m.pm.is_registered(status)]
    for manager in managers:
        manager.pm.unregister(status)
    yield
    for manager in managers:
        manager.add_listener(status)


def test_callbacks_without_the_plugin(run_dag, status_store, without_listener):
    result = run_dag("mltrack_status_callbacks")
    print(f"dag.test mltrack_status_callbacks: {result.seconds:.1f}s")
    assert result.state == "failed"
    by_task = {
        e["task_id"]: status_store.get_experiment(e["experiment_id"])
        for e in status_store.find_experiments(dag_id="mltrack_status_callbacks", run_id=result.run_id)
    }
    assert by_task["train_ok"]["status"] == "Completed"
    assert by_task["train_bad"]["status"] == "Failed"
    assert "bad batch" in by_task["train_bad"]["error"]


def test_store_down_listener_never_raises(caplog):
    """The listener's hooks with an unreachable store: a warning, no exception."""
    import logging
    from types import SimpleNamespace

    from airflow_mltrack.listeners import status

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/mltrack"
    ti = SimpleNamespace(
        dag_id="d",
        run_id="r",
        task_id="t",
        map_index=-1,
        try_number=1,
        max_tries=0,
        state="failed",
        task=None,
    )
    env = {"AIRFLOW_CONN_MLTRACK_DEFAULT": json.dumps({"conn_type": "mltrack", "extra": {"url": url}})}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with caplog.at_level(logging.WARNING):
            status.on_task_instance_running(previous_state=None, task_instance=ti)
            status.on_task_instance_success(previous_state=None, task_instance=ti)
            status.on_task_instance_failed(previous_state=None, task_instance=ti, error=ValueError("x"))
            status.on_dag_run_failed(dag_run=SimpleNamespace(dag_id="d", run_id="r", dag=None), msg="")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert caplog.text.count("experiment status not updated") >= 4


# ------------------------------------------------------------------------------- real scheduler path
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_real_scheduler_path(status_store, tmp_path):
    """scheduler + dag-processor + api-server (LocalExecutor): tasks run in real worker processes.

    The example DAGs train_evaluate_deploy and failing_training run here too, beside the status DAGs.
    """
    started = time.perf_counter()
    dags = tmp_path / "dags"
    dags.mkdir()
    for source in [
        *STATUS_DAGS.glob("*.py"),
        EXAMPLE_DAGS / "train_evaluate_deploy.py",
        EXAMPLE_DAGS / "failing_training.py",
    ]:
        (dags / source.name).symlink_to(source)
    cluster = AirflowCluster(
        tmp_path,
        dags,
        status_store.engine.url.render_as_string(hide_password=False),
        secret="mltrack-status-test-secret",
        extra_env={"MLTRACK_STATUS_MARKER": str(tmp_path / "marker")},
    )
    dag_ids = [
        "mltrack_status_curves",
        "mltrack_status_fail",
        "mltrack_status_cancel",
        "mltrack_status_retry",
        "mltrack_status_timeout",
        "train_evaluate_deploy",
        "failing_training",
    ]
    with cluster:
        deadline = time.monotonic() + 300
        # Workers need the Execution API: a task queued before the API server answers fails unstarted.
        cluster.poll(cluster.healthy, deadline, interval=1)
        pending = list(dag_ids)
        while pending and time.monotonic() < deadline:
            trigger = cluster.airflow("dags", "trigger", pending[0])
            if trigger.returncode == 0:
                pending.pop(0)
            else:
                time.sleep(3)
        assert not pending, f"could not trigger {pending}"
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            exps = {d: status_store.find_experiments(dag_id=d) for d in dag_ids}
            done = {d: [e["status"] for e in rows] for d, rows in exps.items()}
            if all(
                rows and all(s in ("Completed", "Failed", "Cancelled") for s in rows)
                for rows in done.values()
            ):
                states = {d: rows[0] for d, rows in done.items() if not d.endswith(("deploy", "training"))}
                timed_out = {
                    e["task_id"]: status_store.get_experiment(e["experiment_id"])
                    for e in exps["mltrack_status_timeout"]
                }
                examples = {d: done[d] for d in ("train_evaluate_deploy", "failing_training")}
                try:
                    state = status_store.endpoint_state("digits-demo", "digits-classifier")
                except NotFoundError:  # the rollout has not reached the endpoint yet
                    state = []
                if state and state[0]["traffic_percentage"] == 100:
                    break
            time.sleep(2)
        else:
            states = {}
        assert states, f"experiments not finished in time: {done}\n{cluster.log_tails()}"
    print(f"real scheduler path: {time.perf_counter() - started:.1f}s, {states}")
    assert states == {
        "mltrack_status_curves": "Completed",
        "mltrack_status_fail": "Failed",
        "mltrack_status_cancel": "Completed",
        "mltrack_status_retry": "Completed",
        "mltrack_status_timeout": "Completed",
    }
    # dagrun_timeout while train_large runs: the baseline, whose own task succeeded, is Completed; the
    # interrupted training is Cancelled (decided in the scheduler), its reason naming the task.
    assert (timed_out["train_baseline"]["status"], timed_out["train_baseline"]["error"]) == (
        "Completed",
        None,
    )
    assert timed_out["train_large"]["status"] == "Cancelled", timed_out["train_large"]
    assert "train_large" in timed_out["train_large"]["error"], timed_out["train_large"]
    (curves,) = status_store.find_experiments(dag_id="mltrack_status_curves")
    assert len(status_store.metric_history(curves["experiment_id"], "loss", "train")) == 5
    (failed,) = status_store.find_experiments(dag_id="mltrack_status_fail")
    assert "diverged: loss is nan" in status_store.get_experiment(failed["experiment_id"])["error"]
    (retried,) = status_store.find_experiments(dag_id="mltrack_status_retry")
    assert len(status_store.metric_history(retried["experiment_id"], "loss", "validation")) == 3
    assert Path(tmp_path / "marker").exists()
    # The example DAGs on real workers: three trained candidates and the champion evaluation Completed,
    # the winner serving 100% of the endpoint; the diverging training Failed with its error.
    assert sorted(examples["train_evaluate_deploy"]) == ["Completed"] * 4
    assert examples["failing_training"] == ["Failed"]
    (failing,) = status_store.find_experiments(dag_id="failing_training")
    assert "diverged" in status_store.get_experiment(failing["experiment_id"])["error"]
