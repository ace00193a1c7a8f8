"""Operators of airflow-mltrack: thin wrappers that validate inputs, call the tracking store, return ids."""

from __future__ import annotations

from airflow_mltrack.operators.backfill import BackfillMetricsOperator
from airflow_mltrack.operators.base import MLTrackBaseOperator
from airflow_mltrack.operators.catalog import (
    RegisterDatasetOperator,
    RegisterModelOperator,
    dataset_asset,
    dataset_asset_uri,
)
from airflow_mltrack.operators.deploy import DeployModelOperator
from airflow_mltrack.operators.experiments import (
    CreateExperimentOperator,
    LogMetricsOperator,
    SetExperimentStatusOperator,
)
from airflow_mltrack.operators.preprocessing import PreprocessingJobOperator
from airflow_mltrack.sdk.links import ExperimentLink

__all__ = [
    "BackfillMetricsOperator",
    "CreateExperimentOperator",
    "DeployModelOperator",
    "ExperimentLink",
    "LogMetricsOperator",
    "MLTrackBaseOperator",
    "PreprocessingJobOperator",
    "RegisterDatasetOperator",
    "RegisterModelOperator",
    "SetExperimentStatusOperator",
    "dataset_asset",
    "dataset_asset_uri",
]
