"""DAGs for the fault tests (tests/reliability/test_faults.py): the faults fire at fixed points of the tasks.

The points are in ``tests/reliability/_fault_hooks.py``; an unarmed point does nothing, so these DAGs also
run cleanly on their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, XComArg, dag, task

from airflow_mltrack.operators.backfill import BackfillMetricsOperator
from airflow_mltrack.operators.experiments import LogMetricsOperator
from tests.reliability import _fault_hooks as faults

START = datetime(2025, 1, 1)


class FaultyLogMetricsOperator(LogMetricsOperator):
    """LogMetricsOperator whose write runs inside the fault point ``log_metrics`` (per try)."""

    def execute(self, context):  # noqa: ANN001, ANN201 - the parent's signature
        ti = context["ti"]
        with faults.around("log_metrics", try_number=ti.try_number, experiment_id=int(self.experiment_id)):
            return super().execute(context)


@dag(dag_id="mltrack_fault_restart", schedule=None, start_date=START, catchup=False)
def restart_dag():
    @task.mltrack(
        project=faults.PROJECT,
        experiment="restart",
        retries=1,
        retry_delay=timedelta(seconds=0),
        flush_seconds=None,
    )
    def train(tracker=None):
        half = faults.RESTART_EPOCHS // 2
        for epoch in range(faults.RESTART_EPOCHS):
            if epoch == half:
                tracker.flush()
                faults.fire("between_writes")  # the server restarts between two writes of this task
            tracker.log_metric("loss", faults.train_value("loss", epoch), step=epoch, evaluation_set="train")
            tracker.log_metric("val_loss", faults.train_value("val_loss", epoch), step=epoch)
        tracker.flush()
        return {"accuracy": 0.875, "available_after_restart": tracker.available}

    log_metrics = FaultyLogMetricsOperator(
        task_id="log_metrics",
        experiment_id="{{ ti.xcom_pull(task_ids='train', key='mltrack_experiment_id') }}",
        metrics=faults.direct_rows(),
        retries=1,
        retry_delay=timedelta(seconds=0),
    )

    @task
    def outage(experiment_id: int):
        """One of the experiment's tasks (it takes train's experiment id): the server stops here, so this
        task's success event finds it down."""
        faults.fire("outage")

    @task
    def report(experiment_id: int):
        """Its running event finds the server down; it brings the server back; its success event completes."""
        from airflow_mltrack.hooks.mltrack import MLTrackHook

        faults.fire("recover")
        return MLTrackHook().get_store().get_experiment(experiment_id)["status"]

    trained = train()
    experiment_id = XComArg(trained.operator, key="mltrack_experiment_id")
    trained >> log_metrics >> outage(experiment_id) >> report(experiment_id)


@dag(dag_id="mltrack_fault_offline", schedule=None, start_date=START, catchup=False)
def offline_dag():
    @task.mltrack(
        project=faults.PROJECT,
        experiment="offline",
        retries=0,
        flush_every=100_000,
        flush_seconds=None,
        hyperparameters={"optimizer": faults.OFFLINE_PARAMS["optimizer"]},
    )
    def train(lr: float = 0.01, tracker=None):
        for epoch in range(faults.OFFLINE_EPOCHS):
            if epoch == faults.OFFLINE_EPOCHS // 2:
                tracker.flush()
                faults.fire("store_down")  # mid-run case: the tracking server stops here ...
            if epoch == faults.OFFLINE_EPOCHS * 3 // 4:
                tracker.flush()  # ... this write fails (the tracker goes offline) ...
                faults.fire("store_up")  # ... and the server is back before the task ends
            for split, values in faults.offline_epoch(epoch).items():
                tracker.log_metrics(values, evaluation_set=split, step=epoch)
        tracker.log_params({"batch_size": faults.OFFLINE_PARAMS["batch_size"]})
        return faults.OFFLINE_RETURN

    train()


restart_dag()
offline_dag()

# Imports what mltrack_fault_offline's train could not write (the range comes from the run's conf).
with DAG(
    dag_id="mltrack_fault_backfill",
    schedule=None,
    start_date=START,
    params={"start": "2025-01-01", "end": "2025-01-02"},
):
    BackfillMetricsOperator(
        task_id="reconcile",
        sources=[
            {
                "dag_id": "mltrack_fault_offline",
                "task_id": "train",
                "project": faults.PROJECT,
                "xcom_key": "mltrack_unsaved",
            }
        ],
        start="{{ params.start }}",
        end="{{ params.end }}",
    )
