"""metric_latest: kept equal to a recomputation from metrics by every write, on both backends."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import delete, select, true

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.metric_writes import COPY_THRESHOLD
from airflow_mltrack.store.models import Experiment
from airflow_mltrack.store.tables import metric_latest, metrics


def _num(value: Any) -> float:
    """A stored metric value as a float: SQLite stores NaN as NULL (the text 'NaN' before revision 0005)."""
    if value is None:
        return math.nan
    return float(value) if isinstance(value, str) else value


def _order(value: float) -> tuple[bool, float]:
    return (math.isnan(value), 0.0 if math.isnan(value) else value)  # NaN sorts above every number


def recomputed(store: TrackingStore) -> dict[tuple, tuple]:
    """The final value (step-less, else highest step), min, max and points per key, in Python."""
    with store.engine.connect() as conn:
        found = conn.execute(
            select(
                metrics.c.experiment_id,
                metrics.c.name,
                metrics.c.evaluation_set,
                metrics.c.step,
                metrics.c.value,
            )
        ).all()
    by_key: dict[tuple, list[tuple[int | None, float]]] = {}
    for experiment_id, name, split, step, value in found:
        by_key.setdefault((experiment_id, name, split), []).append((step, _num(value)))
    out = {}
    for key, points in by_key.items():
        step, value = max(points, key=lambda p: (p[0] is None, p[0] if p[0] is not None else 0))
        values = [p[1] for p in points]
        out[key] = (step, value, min(values, key=_order), max(values, key=_order), len(points))
    return out


def stored(store: TrackingStore) -> dict[tuple, tuple]:
    with store.engine.connect() as conn:
        found = conn.execute(select(metric_latest)).mappings().all()
    return {
        (r["experiment_id"], r["name"], r["evaluation_set"]): (
            r["step"],
            _num(r["value"]),
            _num(r["min_value"]),
            _num(r["max_value"]),
            r["points"],
        )
        for r in found
    }


def same(a: dict[tuple, tuple], b: dict[tuple, tuple]) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        for x, y in zip(a[key], b[key], strict=True):
            if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
                continue
            if x != y:
                return False
    return True


@pytest.fixture
def experiments(store: TrackingStore):
    dataset_id = store.register_dataset("p", "d", "Tabular")
    model_id = store.register_model("p", "m", "sklearn")
    return store, [store.create_experiment("p", f"e{i}", model_id, dataset_id) for i in range(2)]


def test_latest_follows_every_batch(experiments):
    store, (first, second) = experiments
    batches = [
        (first, {"loss": [0.9, 0.5, 0.3]}, "train"),
        (first, [{"name": "loss", "value": 0.1, "step": 0, "evaluation_set": "train"}], "train"),  # new min
        (
            first,
            [{"name": "loss", "value": 2.0, "step": 0, "evaluation_set": "train"}],
            "train",
        ),  # min moves up
        (
            first,
            [{"name": "loss", "value": 0.7, "step": 2, "evaluation_set": "train"}],
            "train",
        ),  # final rewritten
        (first, {"accuracy": [0.5, 0.6]}, "validation"),
        (first, {"accuracy": 0.65}, "validation"),  # step-less wins over every step
        (first, [{"name": "accuracy", "value": 0.99, "step": 50, "evaluation_set": "validation"}], "test"),
        (first, {"accuracy": 0.66}, "validation"),  # step-less overwritten
        (second, {"loss": [1.0, float("inf"), float("nan")]}, "train"),  # NaN final, NaN max
        (second, {"f1": [0.2, float("nan"), 0.4]}, "test"),  # NaN in the middle
        (second, {"f1": float("nan")}, "validation"),
    ]
    for experiment_id, payload, split in batches:
        store.log_metrics(experiment_id, payload, evaluation_set=split)
        assert same(stored(store), recomputed(store)), (payload, stored(store), recomputed(store))

    latest = stored(store)
    with store.engine.connect() as conn:
        reference = conn.execute(store.final_values(true())).mappings().all()
    assert same(
        latest,
        {
            (r["experiment_id"], r["name"], r["evaluation_set"]): (
                r["step"],
                _num(r["value"]),
                _num(r["min_value"]),
                _num(r["max_value"]),
                r["points"],
            )
            for r in reference
        },
    )
    assert latest[(first, "loss", "train")] == (2, 0.7, 0.5, 2.0, 3)
    assert latest[(first, "accuracy", "validation")][:2] == (None, 0.66)
    assert latest[(first, "accuracy", "validation")][4] == 4
    assert math.isnan(latest[(second, "loss", "train")][1])

    rows = {(r["evaluation_set"], r["name"]): r for r in store.latest_metrics(first)}
    assert rows[("train", "loss")]["value"] == 0.7 and rows[("train", "loss")]["min_value"] == 0.5
    assert (
        rows[("validation", "accuracy")]["step"] is None and rows[("validation", "accuracy")]["points"] == 4
    )


def test_latest_after_bulk_batches(experiments):
    """Batches past COPY_THRESHOLD (PostgreSQL's COPY path), many keys, logged twice with new values."""
    store, (first, second) = experiments
    size = COPY_THRESHOLD * 2
    for scale in (1.0, 0.5):
        for experiment_id in (first, second):
            rows = [
                {"name": f"m{i % 7}", "value": scale * i, "step": i // 7, "evaluation_set": "train"}
                for i in range(size)
            ]
            assert store.log_metrics(experiment_id, rows) == size
    assert same(stored(store), recomputed(store))
    assert len(stored(store)) == 14


def test_leaderboard_and_sort_skip_nan_finals(experiments):
    store, (first, second) = experiments
    store.log_metrics(first, {"accuracy": [0.5, 0.9]})
    store.log_metrics(second, {"accuracy": [0.95, float("nan")]})  # diverged: final value NaN
    assert [r["experiment_id"] for r in store.leaderboard("p", "accuracy")] == [first]
    compared = store.compare([first, second])
    values = compared["metrics"][0]["values"]
    assert values[first] == 0.9 and math.isnan(_num(values[second]))


def test_deleting_an_experiment_cascades(experiments):
    store, (first, second) = experiments
    store.log_metrics(first, {"loss": [0.3, 0.2]})
    store.log_metrics(second, {"loss": 0.1})
    with store.engine.begin() as conn:
        conn.execute(delete(Experiment.__table__).where(Experiment.__table__.c.experiment_id == first))
    assert set(stored(store)) == {(second, "loss", "test")}
    assert same(stored(store), recomputed(store))


def _curve(name: str, steps: range, scale: float = 1.0) -> list[dict[str, Any]]:
    return [{"name": name, "value": scale * s, "step": s, "evaluation_set": "train"} for s in steps]


def test_bulk_appends_gap_fills_and_rewrites(experiments):
    """COPY-sized batches that append past the stored steps (PostgreSQL: straight into metrics), fill a
    gap below them, rewrite stored steps, and add a step-less value: metric_latest stays exact."""
    store, (first, _) = experiments
    size = COPY_THRESHOLD + 100
    store.log_metrics(first, _curve("loss", range(size, 2 * size)))  # a new key
    store.log_metrics(first, _curve("loss", range(2 * size, 3 * size)))  # appends past the stored final
    assert same(stored(store), recomputed(store))
    store.log_metrics(first, _curve("loss", range(0, size)))  # fills the steps below
    assert same(stored(store), recomputed(store))
    store.log_metrics(first, _curve("loss", range(size // 2, size + size // 2), scale=-1.0))  # rewrites
    assert same(stored(store), recomputed(store))
    store.log_metrics(first, [{"name": "loss", "value": 42.0, "evaluation_set": "train"}])
    assert same(stored(store), recomputed(store))
    step, value, low, high, points = stored(store)[(first, "loss", "train")]
    assert (step, value, points) == (None, 42.0, 3 * size + 1)
    assert low == -(size + size // 2 - 1) and high == 3 * size - 1


def test_bulk_append_falls_back_when_metric_latest_is_behind(experiments):
    """If another writer's rows are not in metric_latest yet (simulated by deleting its row), the direct
    COPY meets the unique index, rolls back to its savepoint and merges: nothing lost or doubled."""
    store, (first, _) = experiments
    size = COPY_THRESHOLD + 10
    store.log_metrics(first, _curve("acc", range(size)))
    with store.engine.begin() as conn:
        conn.execute(delete(metric_latest))
    store.log_metrics(first, _curve("acc", range(size), scale=2.0))
    with store.engine.connect() as conn:
        values = sorted(_num(v) for v in conn.execute(select(metrics.c.value)).scalars())
    assert values == [2.0 * s for s in range(size)]
    assert same(stored(store), recomputed(store))


@pytest.mark.parametrize("size", [10, COPY_THRESHOLD + 1])
def test_unknown_experiment_is_named_on_every_path(store: TrackingStore, size: int):
    from airflow_mltrack.errors import NotFoundError

    with pytest.raises(NotFoundError, match="experiment_id=987654"):
        store.log_metrics(987654, _curve("loss", range(size)))
    with store.engine.connect() as conn:
        assert conn.execute(select(metrics.c.metric_id)).first() is None
