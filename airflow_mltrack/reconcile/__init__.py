"""Reconcile metrics from XCom into the tracking store: the logic shared by ``BackfillMetricsOperator`` and
``mltrack backfill``.

XCom is the durable buffer: when the tracking database was down, when tracking was added after the fact,
or when a DAG never used our operators, the metrics a task returned are still in Airflow. A
:class:`Reconciler` walks the runs of a source task in a date range and imports each run's XCom payload
into the experiment linked to that run (dag_id, run_id, task_id, map_index), creating the experiment when
there is none. docs/backfill.md is the user's guide; docs/architecture.md places the package.

- :mod:`~airflow_mltrack.reconcile.unsaved`: the ``mltrack_unsaved`` envelope (shared with ``@task.mltrack``);
- :mod:`~airflow_mltrack.reconcile.spec`: the sources to import and the date helpers;
- :mod:`~airflow_mltrack.reconcile.window`: the ``[start, end)`` a scheduled run covers;
- :mod:`~airflow_mltrack.reconcile.sources`: where runs and XComs come from (Task SDK, REST API, metadata DB);
- :mod:`~airflow_mltrack.reconcile.reconciler`: the import itself and its report.

Named ``reconcile`` so that it does not read as Airflow's own ``backfill`` command.
"""

from __future__ import annotations

from airflow_mltrack.reconcile.reconciler import (
    IMPORTED,
    PRESENT,
    SKIPPED,
    Reconciler,
    ReconcileReport,
    RunOutcome,
)
from airflow_mltrack.reconcile.sources import (
    MISSING,
    MetadataDBRunSource,
    RestApiRunSource,
    RunSource,
    SourceRun,
    TaskSDKRunSource,
    source_from_env,
)
from airflow_mltrack.reconcile.spec import SourceSpec, as_utc, as_utc_field, check_sources, parse_sources
from airflow_mltrack.reconcile.unsaved import Unsaved, is_unsaved_envelope, parse_unsaved, unsaved_envelope
from airflow_mltrack.reconcile.window import RunWindow, previous_fire_time, run_window, window_from_context

__all__ = [
    "IMPORTED",
    "MISSING",
    "PRESENT",
    "SKIPPED",
    "MetadataDBRunSource",
    "ReconcileReport",
    "Reconciler",
    "RestApiRunSource",
    "RunOutcome",
    "RunSource",
    "RunWindow",
    "SourceRun",
    "SourceSpec",
    "TaskSDKRunSource",
    "Unsaved",
    "as_utc",
    "as_utc_field",
    "check_sources",
    "is_unsaved_envelope",
    "parse_sources",
    "parse_unsaved",
    "previous_fire_time",
    "run_window",
    "source_from_env",
    "unsaved_envelope",
    "window_from_context",
]
