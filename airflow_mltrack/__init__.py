"""airflow-mltrack: experiment tracking that lives inside Apache Airflow 3."""

from __future__ import annotations

from airflow_mltrack.errors import MLTrackError

__version__ = "0.1.0"

__all__ = ["MLTrackError", "__version__", "get_provider_info"]


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""
    from airflow_mltrack.provider_info import PROVIDER_INFO

    return PROVIDER_INFO
