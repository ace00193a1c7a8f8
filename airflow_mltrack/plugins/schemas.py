"""The JSON API's response models (pydantic): the shapes of ``/mltrack/api/...`` and its OpenAPI schema.

Non-finite metric values are serialised as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer


class _Out(BaseModel):
    """Every response model: unknown row keys ignored, non-finite floats as strings."""

    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="strings")


class ProjectOut(_Out):
    """A project with its counts (experiments: only those the reader may see)."""

    project_id: int
    name: str
    description: str | None = None
    status: str
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    datasets: int = 0
    models: int = 0
    experiments: int = 0
    endpoints: int = 0


class ExperimentOut(_Out):
    """An experiment with its project, model and dataset names, its Airflow link and tags."""

    experiment_id: int
    project_id: int
    project: str
    name: str
    description: str | None = None
    status: str
    error: str | None = None
    hyperparameters: dict[str, Any] | None = None
    model_id: int
    model_name: str
    model_version: str
    dataset_id: int
    dataset_name: str
    dataset_version: str
    code_version: str | None = None
    notes: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    tags: list[str] = Field(default_factory=list)
    sort_value: float | None = None


class ColumnOut(_Out):
    """A chosen column of the experiment list: the key as asked, in one spelling, and its kind."""

    key: str = Field(description="the key as given in columns=; each row's columns are keyed by it")
    canonical: str = Field(description="metrics.<split>.<name>, params.<key> or attributes.<name>")
    kind: str = Field(description="number (metrics), param, text, time, duration or status")


class ExperimentRowOut(ExperimentOut):
    """An experiment of the list with the values of the chosen columns."""

    columns: dict[str, Any] = Field(
        default_factory=dict,
        description="key -> value: a metric's {value, min, max, step, points} (null: not logged), a "
        "param's value (secrets hidden; null: not set), an attribute's value",
    )

    @field_serializer("columns")
    def _columns(self, columns: dict[str, Any]) -> dict[str, Any]:
        """Non-finite metric values as strings here too (pydantic writes them as null inside ``Any``)."""
        return {key: _finite(value) for key, value in columns.items()}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class ExperimentPageOut(_Out):
    """One page of the experiment list and the count of every match."""

    total: int = Field(description="matches, counted exactly up to 1,000 (then a lower bound)")
    total_exact: bool = Field(default=True, description="false: more than `total` match")
    limit: int
    offset: int
    from_end: bool = Field(default=False, description="offset counts back from the last match")
    sort: str | None = None
    order: str
    filter: str | None = Field(default=None, description="the search expression applied")
    order_by: list[str] = Field(default_factory=list, description="the order_by clauses applied")
    columns: list[ColumnOut] = Field(default_factory=list)
    items: list[ExperimentRowOut]


class MetricSummaryOut(_Out):
    """The final value and range of one metric of one experiment on one split."""

    name: str
    evaluation_set: str
    value: float = Field(description="the final value: the step-less one, else the one of the highest step")
    step: int | None = None
    min_value: float
    max_value: float
    points: int


class ExperimentDetailOut(_Out):
    """One experiment and the summary of each of its metrics."""

    experiment: ExperimentOut
    metrics: list[MetricSummaryOut]


class CurveOut(_Out):
    """One metric of one experiment on one split, by step; downsampled when longer than ``points``
    (then per bucket: the last step and its value, the finite min and max). docs/ui.md, "Charts"."""

    experiment_id: int
    name: str
    evaluation_set: str
    steps: list[int]
    values: list[float]
    mins: list[float | None] | None = Field(None, description="per bucket finite min (downsampled only)")
    maxs: list[float | None] | None = Field(None, description="per bucket finite max (downsampled only)")
    gaps: list[int] = Field(
        default_factory=list, description="steps of NaN/inf values (per bucket, the first)"
    )
    relative: list[float | None] = Field(
        default_factory=list,
        description="seconds from the experiment's start_time to each point's recorded_at",
    )
    start_time: dt.datetime | None = None
    count: int = Field(0, description="rows of the series in the asked step range")
    first_step: int | None = None
    last_step: int | None = None
    downsampled: bool = False


class CompareMetricOut(_Out):
    """The final value of one metric for each compared experiment, which way is better (guessed from the
    name: loss, error, mse, mae, rmse, perplexity are lower-is-better) and the best experiments."""

    name: str
    evaluation_set: str
    values: dict[int, float | None]
    lower_is_better: bool
    best: list[int]


class CompareOut(_Out):
    """2 to 100 experiments side by side: hyperparameters (and which differ) and final metric values."""

    experiments: list[ExperimentOut]
    hyperparameters: dict[str, dict[int, Any]]
    differing: list[str]
    metrics: list[CompareMetricOut]


class LeaderboardRowOut(_Out):
    """One ranked experiment of the leaderboard."""

    rank: int
    experiment_id: int
    name: str
    status: str
    value: float
    step: int | None = None
    hyperparameters: dict[str, Any] | None = None
    model_id: int
    dag_id: str | None = None
    run_id: str | None = None


class MetricKeyOut(_Out):
    """A metric name on a split: a sort key of the experiment list."""

    evaluation_set: str
    name: str


class DatasetOut(_Out):
    """A dataset version and the number of visible experiments that used it."""

    dataset_id: int
    project_id: int
    project: str
    name: str
    version: str
    data_type: str
    description: str | None = None
    source_url: str | None = None
    size_bytes: int | None = None
    num_records: int | None = None
    created_at: dt.datetime | None = None
    experiments: int = 0


class ServingOut(_Out):
    """An endpoint serving a model, with its share of the traffic."""

    endpoint: str
    traffic_percentage: float


class ModelOut(_Out):
    """A model version, its visible experiment count and the endpoints serving it."""

    model_id: int
    project_id: int
    project: str | None = None
    name: str
    version: str
    framework: str
    architecture: str | None = None
    description: str | None = None
    model_path: str | None = None
    model_type: str | None = None
    input_schema: Any = None
    output_schema: Any = None
    created_at: dt.datetime | None = None
    experiments: int = 0
    serving: list[ServingOut] = Field(default_factory=list)


class JobOut(_Out):
    """A preprocessing job (parameters with secrets hidden)."""

    job_id: int
    project_id: int
    name: str
    input_dataset_id: int
    output_dataset_id: int | None = None
    parameters: dict[str, Any] | None = None
    status: str
    error: str | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None


class LineageDatasetOut(_Out):
    """A dataset in a lineage graph."""

    dataset_id: int
    name: str
    version: str
    data_type: str


class LineageExperimentOut(_Out):
    """An experiment in a lineage graph."""

    experiment_id: int
    name: str
    status: str
    dataset_id: int
    model_id: int
    dag_id: str | None = None
    run_id: str | None = None


class LineageModelOut(_Out):
    """A model in a lineage graph."""

    model_id: int
    name: str
    version: str
    framework: str


class AssignmentOut(_Out):
    """One assignment of a model to an endpoint (a deploy, canary, promotion...)."""

    endpoint_model_id: int
    kind: str | None = Field(
        default=None, description="deploy, canary, promote, rollback or adjust (unknown for old rows)"
    )
    endpoint_id: int
    endpoint: str
    model_id: int
    model_name: str | None = None
    model_version: str | None = None
    traffic_percentage: float
    promoted_at: dt.datetime | None = None
    retired_at: dt.datetime | None = None
    dag_id: str | None = None
    run_id: str | None = None


class LineageOut(_Out):
    """The graph around a dataset: jobs up and down, experiments, models, deployments."""

    dataset: LineageDatasetOut
    upstream_jobs: list[JobOut]
    downstream_jobs: list[JobOut]
    datasets: list[LineageDatasetOut]
    experiments: list[LineageExperimentOut] = Field(description="the newest experiments (at most 100)")
    experiments_total: int = Field(description="all experiments trained on these datasets")
    models: list[LineageModelOut]
    deployments: list[AssignmentOut]


class EndpointOut(_Out):
    """An endpoint with its current traffic split and its history."""

    endpoint_id: int
    project_id: int
    project: str
    name: str
    url: str | None = None
    description: str | None = None
    status: str
    active: list[AssignmentOut]
    history: list[AssignmentOut]


class SchemaOut(_Out):
    """The live tracking database as a Mermaid ER diagram."""

    dialect: str
    mermaid: str


__all__ = [
    "AssignmentOut",
    "ColumnOut",
    "CompareMetricOut",
    "CompareOut",
    "CurveOut",
    "DatasetOut",
    "EndpointOut",
    "ExperimentDetailOut",
    "ExperimentOut",
    "ExperimentPageOut",
    "ExperimentRowOut",
    "JobOut",
    "LeaderboardRowOut",
    "LineageDatasetOut",
    "LineageExperimentOut",
    "LineageModelOut",
    "LineageOut",
    "MetricKeyOut",
    "MetricSummaryOut",
    "ModelOut",
    "ProjectOut",
    "SchemaOut",
    "ServingOut",
]
