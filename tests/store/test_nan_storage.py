"""NaN metric values (a diverged run) as both backends store them and as readers outside the store see them:
PostgreSQL keeps a double NaN, SQLite (whose REAL has no NaN) stores NULL. The store API returns
float('nan') on both; a plain sqlite3 or psycopg reader gets a number or a missing value, never text."""

from __future__ import annotations

import math

from airflow_mltrack.store import TrackingStore
from tests.store.test_metric_latest import recomputed, same, stored


def _diverged_run(store: TrackingStore) -> tuple[int, int]:
    """What a training task logs when the loss blows up: a curve with a NaN, a final NaN accuracy."""
    dataset = store.register_dataset("churn", "customers", "Tabular")
    model = store.register_model("churn", "mlp", "torch")
    healthy = store.create_experiment("churn", "lr-0.01", model, dataset, {"lr": 0.01})
    diverged = store.create_experiment("churn", "lr-10", model, dataset, {"lr": 10})
    store.log_metrics(healthy, {"loss": [0.9, 0.5, 0.3], "accuracy": 0.91})
    store.log_metrics(diverged, {"loss": [0.9, float("nan"), 0.5], "accuracy": float("nan")})
    return healthy, diverged


def _plain_read(store: TrackingStore, sql: str) -> list[tuple]:
    """Rows as sqlite3 or psycopg return them: how a notebook reads the file or the database."""
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        raw.close()


def _numbers_or_missing(values: list) -> bool:
    return all(value is None or isinstance(value, float) for value in values)


def test_diverged_run_reads_the_same_in_and_outside_the_store(store: TrackingStore):
    healthy, diverged = _diverged_run(store)
    found = _plain_read(
        store,
        f"SELECT name, step, value FROM metrics WHERE experiment_id = {int(diverged)} ORDER BY name, step",
    )
    assert _numbers_or_missing([value for _n, _s, value in found]), found
    nan_rows = [(name, step) for name, step, value in found if value is None or math.isnan(value)]
    assert nan_rows == [("accuracy", None), ("loss", 1)]
    latest = _plain_read(
        store, f"SELECT value, min_value, max_value FROM metric_latest WHERE experiment_id = {int(diverged)}"
    )
    assert _numbers_or_missing([value for row in latest for value in row]), latest

    loss = [row["value"] for row in store.metric_history(diverged, "loss")]
    assert loss[0] == 0.9 and math.isnan(loss[1]) and loss[2] == 0.5
    latest = {row["name"]: row for row in store.latest_metrics(diverged)}
    assert (latest["loss"]["value"], latest["loss"]["min_value"]) == (0.5, 0.5)
    assert math.isnan(latest["loss"]["max_value"])  # NaN counts above every number, as PostgreSQL sorts it
    assert all(math.isnan(latest["accuracy"][k]) for k in ("value", "min_value", "max_value"))
    curves = [r["value"] for r in store.metric_curves([diverged]) if r["name"] == "loss"]
    assert math.isnan(curves[1])
    compared = {m["name"]: m["values"] for m in store.compare([healthy, diverged])["metrics"]}
    assert math.isnan(compared["accuracy"][diverged]) and compared["accuracy"][healthy] == 0.91
    assert [r["experiment_id"] for r in store.leaderboard("churn", "accuracy")] == [healthy]
    assert same(stored(store), recomputed(store))


def test_nan_keeps_the_metric_key_unique_and_is_replaced_by_a_retry(store: TrackingStore):
    """A retried task logs the same keys again, now with numbers: one row per key, metric_latest follows."""
    _healthy, diverged = _diverged_run(store)
    store.log_metrics(diverged, {"accuracy": float("nan")})
    assert len(store.metric_history(diverged, "accuracy")) == 1
    store.log_metrics(diverged, {"loss": [0.9, 0.7, 0.5], "accuracy": 0.88})
    latest = {row["name"]: row for row in store.latest_metrics(diverged)}
    assert (latest["loss"]["min_value"], latest["loss"]["max_value"], latest["loss"]["points"]) == (
        0.5,
        0.9,
        3,
    )
    assert (latest["accuracy"]["value"], latest["accuracy"]["points"]) == (0.88, 1)
    assert same(stored(store), recomputed(store))
    store.log_metrics(diverged, {"loss": [float("nan")] * 3})  # every point NaN: min and max NaN too
    latest = {row["name"]: row for row in store.latest_metrics(diverged)}
    assert all(math.isnan(latest["loss"][k]) for k in ("value", "min_value", "max_value"))
    assert same(stored(store), recomputed(store))
    (plain,) = _plain_read(
        store,
        "SELECT value, min_value, max_value FROM metric_latest"
        f" WHERE experiment_id = {int(diverged)} AND name = 'loss'",
    )
    assert _numbers_or_missing(list(plain)), plain
