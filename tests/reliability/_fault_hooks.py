"""Fault points for the DAGs of ``tests/reliability/dags`` and the rows those DAGs log.

The DAGs run in the test process (``dag.test()``), so this module is shared with the test: a test arms a
fault point by putting a callable in :data:`ACTIONS` (e.g. ``ACTIONS["restart"] = server.restart``), the DAG
calls :func:`fire` (or enters :func:`around`) at that point, and every call is recorded in :data:`FIRED`.
An unarmed point does nothing. The expected rows are computed here once, for the DAGs and the tests.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

PROJECT = "fault_tests"

ACTIONS: dict[str, Callable[..., Any]] = {}
FIRED: list[dict[str, Any]] = []


def reset() -> None:
    ACTIONS.clear()
    FIRED.clear()


def fire(name: str, **info: Any) -> Any:
    """Run the action armed under ``name`` (if any) and record it with its duration and result."""
    action = ACTIONS.get(name)
    if action is None:
        return None
    started = time.perf_counter()
    result = action(**info)
    FIRED.append({"name": name, "seconds": time.perf_counter() - started, "result": result, **info})
    return result


@contextlib.contextmanager
def around(name: str, **info: Any) -> Iterator[None]:
    """Enter the context manager armed under ``name`` (a factory taking ``info``) around a block."""
    factory = ACTIONS.get(name)
    if factory is None:
        yield
        return
    started = time.perf_counter()
    try:
        with factory(**info):
            yield
    finally:
        FIRED.append({"name": name, "seconds": time.perf_counter() - started, **info})


# -- what the restart DAG logs -------------------------------------------------------------------------
RESTART_EPOCHS = 40  # train logs epochs [0, 20) before the server restart and [20, 40) after it
DIRECT_ROWS = 1000  # the LogMetricsOperator batch (>= COPY_THRESHOLD: PostgreSQL's COPY path)


def train_value(name: str, epoch: int) -> float:
    return {"loss": 1.0 / (epoch + 1), "val_loss": 2.0 / (epoch + 1)}[name] + epoch * 1e-6


def direct_rows() -> list[dict[str, Any]]:
    """Rows the ``log_metrics`` task writes: ``grad_norm`` and ``lr`` by step, split ``train``."""
    half = DIRECT_ROWS // 2
    return [
        {"name": name, "value": float(step) + offset, "step": step, "evaluation_set": "train"}
        for name, offset in (("grad_norm", 0.25), ("lr", 0.5))
        for step in range(half)
    ]


def restart_expected() -> dict[tuple[str, int | None, str], float]:
    """Every row of the restart DAG's experiment: (name, step, split) -> value."""
    rows: dict[tuple[str, int | None, str], float] = {}
    for epoch in range(RESTART_EPOCHS):
        rows[("loss", epoch, "train")] = train_value("loss", epoch)
        rows[("val_loss", epoch, "validation")] = train_value("val_loss", epoch)
    rows[("accuracy", None, "validation")] = 0.875
    for row in direct_rows():
        rows[(row["name"], row["step"], row["evaluation_set"])] = row["value"]
    return rows


# -- what the offline DAG logs -------------------------------------------------------------------------
OFFLINE_EPOCHS = 24  # flush at 12 (then the server stops in the mid-run case), back after 18


def offline_epoch(epoch: int) -> dict[str, dict[str, float]]:
    """Per split, the metrics of one epoch; special values (inf, NaN, -0.0, tiny) must survive XCom."""
    train = {"loss": 1.0 / (epoch + 1), "grad_norm": math.inf if epoch == 5 else 0.1 * epoch}
    validation = {"val_loss": math.nan if epoch == 7 else 1.5 / (epoch + 1), "val_acc": 0.5 + epoch / 100}
    if epoch == 0:
        validation["val_acc"] = -0.0
    if epoch == 1:
        train["loss"] = 5e-324
    return {"train": train, "validation": validation}


OFFLINE_RETURN = {"accuracy": 0.91, "test": {"f1": 0.8, "auc": 0.93}, "model_path": "/tmp/offline.pkl"}
OFFLINE_PARAMS = {"lr": 0.01, "optimizer": "adam", "batch_size": 64}


def offline_expected(epochs: range = range(OFFLINE_EPOCHS), returned: bool = True) -> dict[tuple, float]:
    """(name, step, split) -> value of what the offline DAG's task logs (for ``epochs``)."""
    rows: dict[tuple, float] = {}
    for epoch in epochs:
        for split, values in offline_epoch(epoch).items():
            for name, value in values.items():
                rows[(name, epoch, split)] = value
    if returned:
        rows[("accuracy", None, "validation")] = 0.91
        rows[("f1", None, "test")] = 0.8
        rows[("auc", None, "test")] = 0.93
    return rows
