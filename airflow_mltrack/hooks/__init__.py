"""Hooks of airflow-mltrack."""

from __future__ import annotations

from airflow_mltrack.hooks.mltrack import MLTrackHook

__all__ = ["MLTrackHook"]
