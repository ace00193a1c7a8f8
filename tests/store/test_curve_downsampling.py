"""Curves for charts on both backends: bucketed min/max/last in SQL (at most ``points`` per series), NaN/inf
kept as gaps, zoom ranges that refine, relative times, the full read in index order, streamed downloads."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import update

from airflow_mltrack import MLTrackError
from airflow_mltrack.store import TrackingStore, tables
from airflow_mltrack.store.reads import metric_curves as mc

N = 1000


def value_at(step: int) -> float:
    """A known, non-monotonic series: a bucket's last value is neither its min nor its max."""
    return ((step * 7919) % 1009) / 1009.0


def expected_buckets(steps: list[int], points: int) -> dict[int, list[int]]:
    lo, hi = min(steps), max(steps)
    found: dict[int, list[int]] = {}
    for step in steps:
        found.setdefault((step - lo) * points // (hi - lo + 1), []).append(step)
    return found


@pytest.fixture
def curve(store: TrackingStore):
    dataset = store.register_dataset("p", "d", "Tabular")
    model = store.register_model("p", "m", "scikit-learn")
    exp = store.create_experiment("p", "e", model, dataset, {})
    store.log_metrics(exp, {"loss": [value_at(s) for s in range(N)]}, evaluation_set="train")
    store.log_metrics(exp, {"acc": [0.1, 0.2, 0.3]}, evaluation_set="validation")
    store.log_metrics(exp, {"acc": 0.9}, evaluation_set="test")  # step-less: a final value, not a curve
    return store, exp


def test_long_series_is_bucketed_with_min_max_last(curve):
    store, exp = curve
    found = {(s["evaluation_set"], s["name"]): s for s in mc.series(store, [exp], points=64)}
    assert set(found) == {("train", "loss"), ("validation", "acc")}
    loss = found[("train", "loss")]
    assert (
        loss["downsampled"] and loss["count"] == N and (loss["first_step"], loss["last_step"]) == (0, N - 1)
    )
    buckets = expected_buckets(list(range(N)), 64)
    assert len(loss["steps"]) == len(buckets) <= 64
    for i, members in enumerate(buckets[k] for k in sorted(buckets)):
        assert loss["steps"][i] == max(members)
        assert loss["values"][i] == pytest.approx(value_at(max(members)))
        assert loss["mins"][i] == pytest.approx(min(value_at(s) for s in members))
        assert loss["maxs"][i] == pytest.approx(max(value_at(s) for s in members))
    assert loss["gaps"] == []
    short = found[("validation", "acc")]
    assert not short["downsampled"] and short["mins"] is None and short["maxs"] is None
    assert short["steps"] == [0, 1, 2] and short["values"] == pytest.approx([0.1, 0.2, 0.3])


def test_every_point_when_the_series_fits(curve):
    store, exp = curve
    [loss] = mc.series(store, [exp], keys=[("train", "loss")], points=mc.MAX_POINTS)
    assert not loss["downsampled"] and loss["steps"] == list(range(N))
    assert loss["values"] == pytest.approx([value_at(s) for s in range(N)])


def test_non_finite_values_stay_gaps(store: TrackingStore):
    dataset = store.register_dataset("p", "d", "Tabular")
    model = store.register_model("p", "m", "scikit-learn")
    exp = store.create_experiment("p", "e", model, dataset, {})
    values = [float(s) for s in range(100)]
    values[13] = float("nan")  # inside bucket 1 (steps 10..19), not its last step
    values[29] = float("inf")  # the last step of bucket 2
    values[55] = float("-inf")
    values[56] = float("nan")  # two in bucket 5: the first one is the marker
    store.log_metrics(exp, {"loss": values}, evaluation_set="train")
    [loss] = mc.series(store, [exp], points=10)
    assert loss["gaps"] == [13, 29, 55]
    assert loss["steps"][1] == 19 and loss["values"][1] == 19.0
    assert (loss["mins"][1], loss["maxs"][1]) == (10.0, 19.0)  # min/max over the finite values only
    assert loss["steps"][2] == 29 and math.isinf(loss["values"][2]) and loss["maxs"][2] == 28.0
    assert (loss["mins"][5], loss["maxs"][5]) == (50.0, 59.0)
    [raw] = mc.series(store, [exp], points=100)  # not downsampled: each non-finite step is a gap
    assert not raw["downsampled"] and raw["gaps"] == [13, 29, 55, 56]
    assert math.isnan(raw["values"][13]) and raw["values"][29] == math.inf and raw["values"][55] == -math.inf


def test_zoom_range_refines(curve):
    store, exp = curve
    [whole] = mc.series(store, [exp], keys=[("train", "loss")], points=50)
    assert whole["steps"][1] - whole["steps"][0] == 20  # 20 steps per bucket
    [zoomed] = mc.series(store, [exp], keys=[("train", "loss")], points=50, start=400, end=599)
    assert zoomed["downsampled"] and zoomed["count"] == 200
    assert (zoomed["first_step"], zoomed["last_step"]) == (400, 599)
    assert zoomed["steps"][0] == 403 and zoomed["steps"][1] - zoomed["steps"][0] == 4  # 4 steps per bucket
    assert all(400 <= s <= 599 for s in zoomed["steps"]) and len(zoomed["steps"]) == 50
    [close] = mc.series(store, [exp], keys=[("train", "loss")], points=50, start=500, end=520)
    assert not close["downsampled"] and close["steps"] == list(range(500, 521))
    assert close["values"] == pytest.approx([value_at(s) for s in range(500, 521)])


def test_several_experiments_keys_and_relative_time(curve):
    store, exp = curve
    dataset = store.register_dataset("p", "d2", "Tabular")
    model = store.register_model("p", "m2", "scikit-learn")
    other = store.create_experiment("p", "e2", model, dataset, {})
    store.log_metrics(other, {"loss": [3.0, 2.0, 1.0]}, evaluation_set="train")
    started = store.get_experiment(other)["start_time"]
    with store.engine.begin() as conn:  # one point a minute after the start
        m = tables.metrics
        for step in range(3):
            conn.execute(
                update(m)
                .where(m.c.experiment_id == other, m.c.step == step)
                .values(recorded_at=started + dt.timedelta(seconds=60 * (step + 1)))
            )
    found = mc.series(store, [other, exp], keys=[("train", "loss")], points=10)
    assert [s["experiment_id"] for s in found] == sorted([exp, other])
    mine = next(s for s in found if s["experiment_id"] == other)
    assert mine["relative"] == pytest.approx([60.0, 120.0, 180.0])
    assert mine["start_time"] is not None
    assert mc.series(store, [exp], keys=[("inference", "loss")]) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"points": 0}, "points"),
        ({"points": mc.MAX_POINTS + 1}, "points"),
        ({"start": 10, "end": 5}, "end"),
        ({"start": "x"}, "start"),
        ({"keys": [("holdout", "loss")]}, "key"),
        ({"keys": [("train", "")]}, "key"),
    ],
)
def test_bad_input_names_the_field(curve, kwargs, field):
    store, exp = curve
    with pytest.raises(MLTrackError) as caught:
        mc.series(store, [exp], **kwargs)
    assert caught.value.field == field


def test_full_read_in_index_order(curve):
    store, exp = curve
    rows = store.metric_curves([exp])
    stepped = [(r["name"], r["step"], r["evaluation_set"]) for r in rows if r["step"] is not None]
    assert stepped == sorted(stepped)  # (name, step, split): the unique index's order, no sort
    assert len(rows) == N + 3 + 1
    curves = mc.curves(store, [exp])
    assert [(c["name"], c["evaluation_set"]) for c in curves] == [("acc", "validation"), ("loss", "train")]
    assert curves[1]["steps"] == list(range(N)) and curves[1]["values"][7] == pytest.approx(value_at(7))


def test_full_series_streams_every_point(curve, monkeypatch):
    store, exp = curve
    monkeypatch.setattr(mc, "DOWNLOAD_BATCH", 300)  # several keyset pages
    found = {key: list(rows) for key, rows in mc.full_series(store, exp)}
    assert set(found) == {("train", "loss"), ("validation", "acc")}
    loss = found[("train", "loss")]
    assert [s for s, _, _ in loss] == list(range(N))
    assert [v for _, v, _ in loss] == pytest.approx([value_at(s) for s in range(N)])
    assert all(at is not None for _, _, at in loss)
    only = dict(mc.full_series(store, exp, [("validation", "acc")]))
    assert [v for _, v, _ in only[("validation", "acc")]] == pytest.approx([0.1, 0.2, 0.3])
