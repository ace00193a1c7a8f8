"""The body of one writer process of ``test_concurrency.py`` (kept import-light for the spawn start method)."""

from __future__ import annotations

import random
import time
import traceback
from typing import Any

PROJECT = "concurrency"
NAMES = 10  # metric names m0..m9
STEPS_PER_WRITER = 1_000  # each writer: 10 names x 1,000 steps = 10,000 rows
STEP_OFFSET = 250  # writer k of a shared experiment starts at step k*250: neighbours overlap by 750 steps
BATCH = 1_000
LINK = {"dag_id": "train", "run_id": "manual__2026-01-01", "task_id": "fit"}


def encode(writer: int, name_index: int, step: int) -> float:
    """A value that names its writer and key, so the test can check it was really written for that key."""
    return float(writer * 10_000_000 + name_index * 100_000 + step)


def rows_of(writer: int, slot: int) -> list[dict[str, Any]]:
    """The 10,000 rows of a writer, shuffled (so concurrent batches overlap in different orders)."""
    first = slot * STEP_OFFSET
    rows = [
        {"name": f"m{n}", "value": encode(writer, n, step), "step": step}
        for n in range(NAMES)
        for step in range(first, first + STEPS_PER_WRITER)
    ]
    random.Random(writer).shuffle(rows)
    return rows


def run(url: str, writer: int, shared_ids: list[int], rounds: int, barrier: Any, results: Any) -> None:
    """Do the writer's work ``rounds`` times, each after all writers (and the test) meet at ``barrier``."""
    try:
        from airflow_mltrack.store import TrackingStore

        store = TrackingStore.from_url(url)
    except BaseException as exc:  # noqa: BLE001
        store, setup_error = None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    for _ in range(rounds):
        outcome: dict[str, Any] = {"writer": writer}
        try:
            barrier.wait(timeout=180)
            if store is None:
                raise RuntimeError(setup_error)
            started = time.perf_counter()
            dataset_id = store.register_dataset(PROJECT, "shared-dataset", "Tabular")
            model_id = store.register_model(PROJECT, "shared-model", "scikit-learn")
            if writer % 2 == 0:  # the same Airflow task instance (retries racing): one experiment
                own = store.create_experiment(
                    PROJECT, "linked", model_id, dataset_id, {"w": writer}, try_number=writer, **LINK
                )
            else:
                own = store.create_experiment(PROJECT, f"solo-{writer}", model_id, dataset_id)
            target = shared_ids[writer % len(shared_ids)]
            rows = rows_of(writer, writer // len(shared_ids))
            written = 0
            for start in range(0, len(rows), BATCH):
                written += store.log_metrics(target, rows[start : start + BATCH])
            outcome.update(
                dataset_id=dataset_id,
                model_id=model_id,
                experiment_id=own,
                target=target,
                written=written,
                seconds=time.perf_counter() - started,
            )
        except BaseException as exc:  # noqa: BLE001 - every failure is reported to the test
            outcome["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        results.put(outcome)
