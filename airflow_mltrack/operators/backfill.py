"""BackfillMetricsOperator: import metrics that tasks left in XCom into the tracking store, per interval."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mltrack.errors import MLTrackError

if TYPE_CHECKING:
    from airflow.sdk import Context


class BackfillMetricsOperator(BaseOperator):
    """For every run of each source whose logical date falls in [start, end), import the metrics the source
    task returned (XCom) into the experiment linked to that run, creating it when none exists.

    Typical use is a scheduled DAG with ``catchup=True``: each run reconciles its own data interval::

        BackfillMetricsOperator(
            task_id="reconcile",
            sources=[{"dag_id": "nightly_train", "task_id": "evaluate", "project": "churn",
                      "xcom_key": "return_value", "evaluation_set": "test"}],
        )

    :param sources: dicts with ``dag_id``, ``task_id``, ``project`` and optionally ``xcom_key``
        (default ``return_value``), ``evaluation_set`` (default ``test``), ``map_index`` (default -1),
        ``model_id`` + ``dataset_id`` (for experiments created for runs that have none; else a placeholder
        dataset/model named ``"{dag_id}.{task_id}"`` is registered), ``experiment_name``.
    :param start: start of the range (inclusive), templated; default the run's ``data_interval_start``.
    :param end: end of the range (exclusive), templated; default the run's ``data_interval_end``.
    :param project: default ``project`` for sources that give none.
    :param mltrack_conn_id: the tracking store's connection.
    :param api_conn_id: read runs and XComs through the public REST API of this HTTP connection instead of
        the Task SDK (needed to see runs without a logical date).
    :param verify: read the XCom of runs that already have metrics too, and upsert (see ``Reconciler``).
    :param fail_on_skipped: fail the task (after importing the rest) when some run was skipped.

    Returns (XCom) the summary: imported / already_present / skipped counts, rows, experiment_ids and
    the skipped runs with their reasons.
    """

    template_fields: Sequence[str] = ("sources", "start", "end", "project")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        sources: list[dict[str, Any]] | dict[str, Any],
        start: Any = "{{ data_interval_start }}",
        end: Any = "{{ data_interval_end }}",
        project: str | None = None,
        mltrack_conn_id: str = "mltrack_default",
        api_conn_id: str | None = None,
        verify: bool = False,
        fail_on_skipped: bool = False,
        **kwargs: Any,
    ) -> None:
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
        from airflow_mltrack.backfill import Reconciler, parse_sources, source_from_env
        from airflow_mltrack.hooks import MLTrackHook

        specs = parse_sources(self.sources, self.project)
        start, end = _bound(self.start, "start", context), _bound(self.end, "end", context)
        store = MLTrackHook(mltrack_conn_id=self.mltrack_conn_id).get_store()
        runs = source_from_env(self.api_conn_id)
        self.log.info("reconciling %d source(s) over [%s, %s) via %s", len(specs), start, end, runs.name)
        try:
            report = Reconciler(runs, store, verify=self.verify).reconcile(specs, start, end)
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
        summary = report.summary()
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


def _bound(value: Any, field: str, context: Context) -> Any:
    if value in (None, "", "None"):
        fallback = context.get("data_interval_start" if field == "start" else "data_interval_end")
        if fallback is None:
            raise MLTrackError(field, value, "is required when the run has no data interval")
        return fallback
    return value
