"""BackfillMetricsOperator: import metrics that tasks left in XCom into the tracking store, per interval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.vocabulary import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context


class BackfillMetricsOperator(BaseOperator):
    """For every run of each source whose logical date falls in [start, end), import the metrics the source
    task returned (XCom) into the experiment linked to that run, creating it when none exists.

    Typical use is a scheduled DAG with ``catchup=True``: each run reconciles the period that ended at it::

        BackfillMetricsOperator(
            task_id="reconcile",
            sources=[{"dag_id": "nightly_train", "task_id": "evaluate", "project": "churn",
                      "xcom_key": "return_value", "evaluation_set": "test"}],
        )

    The range, when ``start``/``end`` are not given (:func:`~airflow_mltrack.reconcile.window.run_window`):

    - the run's data interval when it is not empty (``CronDataIntervalTimetable``, a ``timedelta``
      schedule, their manual runs);
    - else up to the run's logical date (``run_after`` when it has none), from: the earliest run behind
      the triggering asset events (an asset-triggered run); else the schedule's previous fire time
      (``schedule="@daily"`` is a ``CronTriggerTimetable`` in Airflow 3, with empty data intervals: its run
      at D covers ``[D - 1 day, D)``, and a manual run at 14:00 covers that day up to 14:00); else the end
      of this DAG's previous successful run (``schedule=None`` run by hand); else the DAG's ``start_date``.

    :param sources: dicts with ``dag_id``, ``task_id``, ``project`` and optionally ``xcom_key``
        (default ``return_value``), ``evaluation_set`` (default ``test``), ``map_index`` (default -1),
        ``model_id`` + ``dataset_id`` (for experiments created for runs that have none; else a placeholder
        dataset/model named ``"{dag_id}.{task_id}"`` is registered), ``experiment_name``. Checked when the
        DAG is parsed, except the values that are templates.
    :param start: start of the range (inclusive), templated; default: see above.
    :param end: end of the range (exclusive), templated; default: see above.
    :param project: default ``project`` for sources that give none.
    :param mltrack_conn_id: the tracking store's connection.
    :param api_conn_id: read runs and XComs through the public REST API of this HTTP connection instead of
        the Task SDK (needed to see runs without a logical date).
    :param verify: read the XCom of runs that already have metrics too, and upsert (see ``Reconciler``).
    :param fail_on_skipped: fail the task (after importing the rest) when some run was skipped.

    Returns (XCom) the summary: imported / already_present / skipped counts, rows, experiment_ids and
    the skipped runs with their reasons, and the ``start``/``end`` used with the ``rule`` that chose them.
    """

    template_fields: Sequence[str] = ("sources", "start", "end", "project")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        sources: list[dict[str, Any]] | dict[str, Any],
        start: Any = None,
        end: Any = None,
        project: str | None = None,
        mltrack_conn_id: str = DEFAULT_CONN_ID,
        api_conn_id: str | None = None,
        verify: bool = False,
        fail_on_skipped: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_arguments(sources, start, end, project, mltrack_conn_id, api_conn_id, verify, fail_on_skipped)
        super().__init__(**kwargs)
        self.sources = sources
        self.start = start
        self.end = end
        self.project = project
        self.mltrack_conn_id = mltrack_conn_id
        self.api_conn_id = api_conn_id
        self.verify = verify
        self.fail_on_skipped = fail_on_skipped

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mltrack.hooks import MLTrackHook
        from airflow_mltrack.reconcile import Reconciler, parse_sources, source_from_env, window_from_context

        specs = parse_sources(self.sources, self.project)
        window = window_from_context(context, self.start, self.end)
        store = MLTrackHook(mltrack_conn_id=self.mltrack_conn_id).get_store()
        runs = source_from_env(self.api_conn_id)
        self.log.info(
            "reconciling %d source(s) over [%s, %s) (%s) via %s",
            len(specs),
            window.start.isoformat(),
            window.end.isoformat(),
            window.rule,
            runs.name,
        )
        try:
            report = Reconciler(runs, store, verify=self.verify).reconcile(specs, window.start, window.end)
        finally:
            close = getattr(runs, "close", None)
            if close:
                close()
        for outcome in report.outcomes:
            self.log.info(
                "%s.%s %s: %s%s",
                outcome.dag_id,
                outcome.task_id,
                outcome.run_id,
                outcome.outcome,
                f" ({outcome.reason})"
                if outcome.reason
                else f" ({outcome.rows} rows)"
                if outcome.rows
                else "",
            )
        summary = {
            **report.summary(),
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
            "rule": window.rule,
        }
        self.log.info(
            "imported %d run(s), %d already present, %d skipped (%d metric rows)",
            report.imported,
            report.present,
            report.skipped,
            report.rows,
        )
        if self.fail_on_skipped and report.skipped:
            raise MLTrackError(
                "runs", [o["run_id"] for o in summary["skipped_runs"]], "were skipped (see the log)"
            )
        return summary


def _check_arguments(
    sources: Any,
    start: Any,
    end: Any,
    project: Any,
    mltrack_conn_id: Any,
    api_conn_id: Any,
    verify: Any,
    fail_on_skipped: Any,
) -> None:
    """Refuse, when the DAG is parsed, the arguments that are not templates and would fail the run."""
    from airflow_mltrack.reconcile import as_utc_field, check_sources
    from airflow_mltrack.sdk.arguments import is_dynamic

    for name, value, optional in (
        ("project", project, True),
        ("mltrack_conn_id", mltrack_conn_id, False),
        ("api_conn_id", api_conn_id, True),
    ):
        if (value is None and optional) or is_dynamic(value):
            continue
        if not isinstance(value, str) or not value.strip():
            raise MLTrackError(name, value, "must be a non-empty string" + (" or None" if optional else ""))
    for name, value in (("verify", verify), ("fail_on_skipped", fail_on_skipped)):
        if not isinstance(value, bool):
            raise MLTrackError(name, value, "must be True or False")
    check_sources(sources, project, is_dynamic)
    bounds = {
        name: as_utc_field(value, name)
        for name, value in (("start", start), ("end", end))
        if value not in (None, "") and not is_dynamic(value)
    }
    if len(bounds) == 2 and bounds["end"] <= bounds["start"]:
        raise MLTrackError("end", end, f"must be after start ({bounds['start'].isoformat()})")
