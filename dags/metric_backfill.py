"""metric_backfill: evaluate the deployed model once per day, one metric step per daily run.

Each daily run takes its day's labelled data (synthetic here, deterministic per date, with drift that
grows over time), evaluates the model currently deployed on the ``churn-prod`` endpoint against it, and
logs the metrics to ONE long-lived "monitoring" experiment with ``evaluation_set="inference"`` and
``step`` = days from ``START`` to the run's logical date. ``schedule="@daily"`` is a
``CronTriggerTimetable`` in Airflow 3: its runs have empty data intervals, so the day is the logical date
(``run_after`` for a run triggered without one). With ``catchup=True`` the scheduler creates a run for every
past day, so the chart of the monitoring experiment is filled back to ``START``; ``airflow backfill create``
re-runs a range. Both are idempotent: the metric upsert on (experiment, name, step, evaluation_set) means
running a day twice leaves exactly the same rows.

If nothing is deployed on the endpoint yet, a small scikit-learn baseline is trained (deterministically,
on day-0 data), registered and deployed first.

Catchup range: ``START`` is 2026-01-01; set ``MLTRACK_MONITORING_START`` (an ISO date) before the DAG is
parsed to start later and keep the catchup short. ``max_active_runs`` bounds how many days run at once.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import dag, task

PROJECT = "monitoring-demo"
ENDPOINT = "churn-prod"
BASELINE_MODEL = "churn-baseline"
LABELS_DATASET = "churn-daily-labels"
EXPERIMENT = "monitoring"
START = dt.datetime.fromisoformat(os.environ.get("MLTRACK_MONITORING_START", "2026-01-01")).replace(
    tzinfo=dt.UTC
)
N_FEATURES = 6
ROWS_PER_DAY = 400


def interval_day(context: dict) -> int:
    """The step of this run: days from START to the run's logical date (its run_after when it has none).

    Not the data interval: ``@daily`` runs have an empty one, and a run without a logical date none."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return (when.astimezone(dt.UTC).date() - START.date()).days


def make_data(day: int, rows: int = ROWS_PER_DAY):
    """Labelled data of day ``day``: seeded by the date, drifting with ``day``.

    Features shift in mean and the true decision boundary rotates a little more every day, so a model
    trained on day 0 slowly loses accuracy: the monitoring chart tells that story.
    """
    import numpy as np

    date = START.date() + dt.timedelta(days=day)
    rng = np.random.default_rng(int(date.strftime("%Y%m%d")))
    drift = max(day, 0) / 60.0
    x = rng.normal(loc=0.3 * drift, scale=1.0, size=(rows, N_FEATURES))
    base = np.array([1.5, -1.0, 0.8, 0.0, 0.5, -0.3])
    rotated = np.array([0.0, 0.6, -0.4, 1.4, -0.8, 0.9])
    weights = (1 - min(drift, 1.0)) * base + min(drift, 1.0) * rotated
    logits = x @ weights + rng.normal(scale=0.5, size=rows)
    return x, (logits > 0).astype(int)


def train_baseline():
    """The baseline: logistic regression on day-0 data (deterministic: same data, deterministic solver)."""
    from sklearn.linear_model import LogisticRegression

    x, y = make_data(0, rows=2000)
    return LogisticRegression(max_iter=200).fit(x, y)


def load_model(row: dict):
    """The deployed model: the baseline is re-trained deterministically; others load from ``model_path``
    (a joblib file written by the training DAG; only load files you trust)."""
    if row["model_name"] == BASELINE_MODEL:
        return train_baseline()
    path = row.get("model_path")
    if path and os.path.exists(path):
        import joblib

        return joblib.load(path)
    from airflow_mltrack import MLTrackError

    raise MLTrackError("model_path", path, f"cannot load deployed model {row['model_name']!r}")


@dag(
    dag_id="metric_backfill",
    schedule="@daily",
    start_date=START,
    catchup=True,
    max_active_runs=4,
    tags=["mltrack", "example", "monitoring"],
    doc_md=__doc__,
)
def metric_backfill():
    @task
    def ensure_deployed() -> dict:
        """The model on the endpoint (deploying the baseline if there is none) and the monitoring experiment."""
        from airflow_mltrack.errors import NotFoundError
        from airflow_mltrack.hooks import MLTrackHook

        store = MLTrackHook().get_store()
        store.ensure_project(PROJECT, description="Monitoring of a deployed model (metric_backfill example)")
        try:
            active = store.endpoint_state(PROJECT, ENDPOINT)
        except NotFoundError:
            active = []
        if active:
            model_id = int(active[0]["model_id"])
        else:
            train_set = store.register_dataset(PROJECT, "churn-train", "Tabular", num_records=2000)
            model_id = store.register_model(
                PROJECT,
                BASELINE_MODEL,
                "scikit-learn",
                architecture="LogisticRegression",
                description="baseline trained on day-0 data",
                model_type="classifier",
            )
            baseline = store.create_experiment(
                PROJECT,
                "baseline-training",
                model_id,
                train_set,
                hyperparameters={"max_iter": 200},
                status="Completed",
                dag_id="metric_backfill",
                run_id="monitoring",
                task_id="ensure_deployed",
            )
            x, y = make_data(0, rows=2000)
            store.log_metrics(
                baseline, {"accuracy": float(train_baseline().score(x, y))}, evaluation_set="train"
            )
            store.deploy_model(PROJECT, ENDPOINT, model_id, 100)
        labels = store.register_dataset(
            PROJECT, LABELS_DATASET, "Tabular", description="daily labelled traffic"
        )
        experiment_id = store.create_experiment(
            PROJECT,
            EXPERIMENT,
            model_id,
            labels,
            description=f"daily evaluation of the model on endpoint {ENDPOINT}",
            dag_id="metric_backfill",
            run_id="monitoring",
            task_id="evaluate",
        )
        return {"experiment_id": experiment_id, "model_id": model_id}

    @task
    def evaluate(target: dict, **context) -> dict:
        """Evaluate the deployed model on this day's data; one step per day."""
        from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

        from airflow_mltrack.hooks import MLTrackHook

        store = MLTrackHook().get_store()
        active = [
            r for r in store.endpoint_state(PROJECT, ENDPOINT) if int(r["model_id"]) == target["model_id"]
        ]
        if not active:
            active = store.endpoint_state(PROJECT, ENDPOINT)[:1]
        row = {**active[0], "model_path": store.get_model(int(active[0]["model_id"])).get("model_path")}
        model = load_model(row)
        day = interval_day(context)
        x, y = make_data(day)
        scores = model.predict_proba(x)[:, 1]
        predicted = (scores >= 0.5).astype(int)
        metrics = {
            "accuracy": float(accuracy_score(y, predicted)),
            "f1": float(f1_score(y, predicted)),
            "roc_auc": float(roc_auc_score(y, scores)),
            "positive_rate": float(predicted.mean()),
        }
        store.log_metrics(target["experiment_id"], metrics, evaluation_set="inference", step=day)
        return {"step": day, **metrics}

    evaluate(ensure_deployed())


metric_backfill()
