"""Typed rows the store hands to the layers above (hooks, operators, plugins): the shapes of its main
reads, as TypedDicts, so a caller sees the keys it may use (the values stay plain dicts)."""

from __future__ import annotations

import datetime as dt
from typing import Any, NotRequired, TypedDict


class ExperimentRow(TypedDict):
    """An experiment with its project, model and dataset names (``StoreBase.experiment_query``);
    ``tags`` only from ``get_experiment``."""

    experiment_id: int
    project_id: int
    model_id: int
    dataset_id: int
    name: str
    description: str | None
    start_time: dt.datetime
    end_time: dt.datetime | None
    status: str
    hyperparameters: dict[str, Any] | None
    code_version: str | None
    notes: str | None
    error: str | None
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None
    project: str
    model_name: str
    model_version: str
    dataset_name: str
    dataset_version: str
    tags: NotRequired[list[str]]


class LatestMetric(TypedDict):
    """The final value of one metric of one split of an experiment, with its best min/max and count of
    points (a ``metric_latest`` row)."""

    experiment_id: int
    name: str
    evaluation_set: str
    step: int | None
    value: float
    min_value: float
    max_value: float
    points: int


class LeaderboardRow(TypedDict):
    """One ranked experiment of ``MetricStore.leaderboard`` (``value``/``step``: its final metric)."""

    experiment_id: int
    name: str
    status: str
    hyperparameters: dict[str, Any] | None
    model_id: int
    dag_id: str | None
    run_id: str | None
    value: float
    step: int | None
    rank: int


class ComparedMetric(TypedDict):
    """One metric of a comparison: its final value per experiment id."""

    name: str
    evaluation_set: str
    values: dict[int, float]


class Comparison(TypedDict):
    """``MetricStore.compare``: the experiments in the order asked, every hyperparameter per experiment
    id, the keys whose values differ, and the final metrics side by side."""

    experiments: list[ExperimentRow]
    hyperparameters: dict[str, dict[int, Any]]
    differing: list[str]
    metrics: list[ComparedMetric]


__all__ = ["ComparedMetric", "Comparison", "ExperimentRow", "LatestMetric", "LeaderboardRow"]
