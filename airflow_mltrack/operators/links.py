"""The "Experiment" extra link, at the path provider info names (``extra-links``); it lives in
:mod:`airflow_mltrack.sdk.links`, shared with ``@task.mltrack``."""

from __future__ import annotations

from airflow_mltrack.sdk.links import ExperimentLink

__all__ = ["ExperimentLink"]
