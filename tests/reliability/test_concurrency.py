"""32 OS processes writing one PostgreSQL tracking database at once.

Each process registers the same dataset and model, creates an experiment in one shared project (half of
them as the same Airflow task instance, which must converge on one experiment), and logs 10,000 metric
rows in 1,000-row batches into one of 4 shared experiments, with keys overlapping between writers.
Checked: one dataset, one model, the expected experiments, no lost and no duplicated metric row (one row per
distinct key, holding a value some writer gave that key), no exception (a deadlock would be one), and the
same totals when everything runs a second time.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest
from sqlalchemy import func, select, true

from airflow_mltrack.store import TrackingStore
from airflow_mltrack.store.models import Dataset, Experiment, Metric, MetricLatest, Model
from tests.conftest import _db_name
from tests.reliability import _concurrency_worker as w

WRITERS = 32
SHARED = 4
PER_WRITER = w.NAMES * w.STEPS_PER_WRITER


def expected_keys() -> dict[int, set[tuple[str, int]]]:
    """Per shared-experiment index: the distinct (name, step) keys its writers cover."""
    keys: dict[int, set[tuple[str, int]]] = {i: set() for i in range(SHARED)}
    for writer in range(WRITERS):
        first = (writer // SHARED) * w.STEP_OFFSET
        keys[writer % SHARED] |= {
            (f"m{n}", s) for n in range(w.NAMES) for s in range(first, first + w.STEPS_PER_WRITER)
        }
    return keys


class Writers:
    """32 spawned processes, started once; each ``round()`` releases them together and collects outcomes."""

    def __init__(self, url: str, shared_ids: list[int], rounds: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.barrier, self.results = ctx.Barrier(WRITERS + 1), ctx.Queue()
        self.procs = [
            ctx.Process(
                target=w.run, args=(url, i, shared_ids, rounds, self.barrier, self.results), daemon=True
            )
            for i in range(WRITERS)
        ]
        for p in self.procs:
            p.start()

    def round(self) -> tuple[list[dict], float]:
        self.barrier.wait(timeout=180)  # every writer imported and connected: go
        started = time.perf_counter()
        outcomes = [self.results.get(timeout=180) for _ in self.procs]
        return outcomes, time.perf_counter() - started

    def close(self) -> list[int | None]:
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        return [p.exitcode for p in self.procs]


@pytest.fixture
def concurrent_url(pg_server, pg_template, request):
    from airflow_mltrack.store.engine import dispose_engines

    name = _db_name(request, prefix="c")
    url = pg_server.create_database(name, template=pg_template, strategy="FILE_COPY")
    yield url
    dispose_engines()
    pg_server.drop_database(name)


def test_32_writers_converge_without_loss_duplicates_or_deadlocks(concurrent_url):
    store = TrackingStore.from_url(concurrent_url)
    dataset_id = store.register_dataset(w.PROJECT, "shared-dataset", "Tabular")
    model_id = store.register_model(w.PROJECT, "shared-model", "scikit-learn")
    shared_ids = [
        store.create_experiment(w.PROJECT, f"shared-{i}", model_id, dataset_id) for i in range(SHARED)
    ]

    totals = []
    linked_ids = set()
    writers = Writers(concurrent_url, shared_ids, rounds=2)
    try:
        for round_ in (1, 2):
            totals.append(check_round(store, writers, round_, shared_ids, dataset_id, model_id, linked_ids))
    finally:
        exitcodes = writers.close()
    assert exitcodes == [0] * WRITERS
    assert totals[0] == totals[1]
    assert len(linked_ids) == 1  # the second round found the same linked experiment


def check_round(store, writers, round_, shared_ids, dataset_id, model_id, linked_ids):
    keys = expected_keys()
    distinct = sum(len(k) for k in keys.values())
    outcomes, elapsed = writers.round()
    errors = [o["error"] for o in outcomes if "error" in o]
    assert errors == [], errors[0]
    assert {o["dataset_id"] for o in outcomes} == {dataset_id}
    assert {o["model_id"] for o in outcomes} == {model_id}
    linked = {o["experiment_id"] for o in outcomes if o["writer"] % 2 == 0}
    assert len(linked) == 1, linked
    linked_ids |= linked
    assert sum(o["written"] for o in outcomes) == WRITERS * PER_WRITER

    m = Metric.__table__
    with store.engine.connect() as conn:
        n_datasets = conn.execute(select(func.count()).select_from(Dataset.__table__)).scalar_one()
        n_models = conn.execute(select(func.count()).select_from(Model.__table__)).scalar_one()
        n_experiments = conn.execute(select(func.count()).select_from(Experiment.__table__)).scalar_one()
        stored = conn.execute(
            select(m.c.experiment_id, m.c.name, m.c.step, m.c.evaluation_set, m.c.value)
        ).all()
        latest = conn.execute(
            select(
                MetricLatest.__table__.c.experiment_id, func.sum(MetricLatest.__table__.c.points)
            ).group_by(MetricLatest.__table__.c.experiment_id)
        ).all()
        columns = (
            "experiment_id",
            "name",
            "evaluation_set",
            "step",
            "value",
            "min_value",
            "max_value",
            "points",
        )
        kept = {tuple(r[c] for c in columns) for r in conn.execute(select(MetricLatest.__table__)).mappings()}
        reference = {
            tuple(r[c] for c in columns) for r in conn.execute(store.final_values(true())).mappings()
        }
    assert (n_datasets, n_models) == (1, 1)
    # 4 shared + 1 linked (16 racing creators) + 16 unlinked per round (an unlinked create always inserts).
    assert n_experiments == SHARED + 1 + (WRITERS // 2) * round_

    assert len(stored) == distinct  # nothing lost, nothing duplicated
    by_exp: dict[int, set[tuple[str, int]]] = {}
    for exp_id, name, step, split, value in stored:
        assert split == "test"
        by_exp.setdefault(exp_id, set()).add((name, step))
        writer, rest = divmod(int(value), 10_000_000)
        n_index, step_written = divmod(rest, 100_000)
        # the value is one a writer of this experiment gave this very key
        assert shared_ids[writer % SHARED] == exp_id
        assert (f"m{n_index}", step_written) == (name, step)
        first = (writer // SHARED) * w.STEP_OFFSET
        assert first <= step < first + w.STEPS_PER_WRITER
    assert {shared_ids.index(e): k for e, k in by_exp.items()} == keys
    assert dict(latest) == {shared_ids[i]: len(keys[i]) for i in range(SHARED)}  # summary agrees
    assert kept == reference  # final value, min, max and points: as if recomputed from every row

    rate = WRITERS * PER_WRITER / elapsed
    slowest = max(o["seconds"] for o in outcomes)
    print(
        f"\nround {round_}: {WRITERS} processes, {WRITERS * PER_WRITER:,} rows sent, {len(stored):,} stored, "
        f"{elapsed:.2f} s wall, {rate:,.0f} rows/s, slowest writer {slowest:.2f} s, errors 0"
    )
    return (n_datasets, n_models, len(linked), len(stored))
