"""Metrics: logging (one transaction per batch, upsert on the metric key) and metric reads.

The write paths per backend are in :mod:`~airflow_mltrack.store.metric_writes`; the ``metric_latest``
summary each write keeps in its transaction is in :mod:`~airflow_mltrack.store.metric_summary`. Rows are
deduplicated and written in key order, so two writers of the same experiment lock rows in the same order
and cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select
from sqlalchemy.sql import Select

from airflow_mltrack.store import metric_summary, metric_writes
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.base import StoreBase, as_float, float_rows, rows
from airflow_mltrack.store.models import EVALUATION_SETS, EXPERIMENT_STATUSES
from airflow_mltrack.store.payloads import MetricRow, dedupe, parse_metrics, summarize
from airflow_mltrack.store.records import LatestMetric, LeaderboardRow
from airflow_mltrack.store.tables import experiments, metric_latest, metrics
from airflow_mltrack.store.visibility import only_readable

if TYPE_CHECKING:
    from airflow_mltrack.store.reads.compare import Comparison

#: Statuses a leaderboard ranks by default: not Failed or Cancelled (issue 11, item 3).
RANKED_STATUSES = ("Pending", "Running", "Completed")


class MetricStore(StoreBase):
    """Metric logging and metric reads."""

    def log_metrics(
        self,
        experiment_id: int,
        metrics: Any,
        evaluation_set: str = "test",
        step: int | None = None,
    ) -> int:
        """Write a metric payload (any shape docs/operators.md lists) in one transaction; returns the
        number of rows written.

        Logging the same key again replaces its value: retries never duplicate a row.
        """
        experiment_id = v.entity_id("experiment_id", experiment_id)
        batch = dedupe(parse_metrics(metrics, evaluation_set, step))
        return self.log_metric_rows(experiment_id, batch)

    def log_metric(
        self,
        experiment_id: int,
        name: str,
        value: float,
        step: int | None = None,
        evaluation_set: str = "test",
    ) -> int:
        """Log one value."""
        return self.log_metrics(experiment_id, {name: value}, evaluation_set=evaluation_set, step=step)

    def log_metric_rows(self, experiment_id: int, batch: Sequence[MetricRow]) -> int:
        """Write already-parsed, deduplicated rows (see ``payloads.dedupe``) and keep ``metric_latest``.

        ``metric_latest`` is advanced from the batch itself (min, max, count, final row), which is exact
        when every row is new; keys whose stored rows the batch overwrote are then recomputed from
        ``metrics``. The advance also locks those ``metric_latest`` rows (in key order) before the
        recomputation reads, so a concurrent writer's committed rows are always counted.
        """
        if not batch:
            return 0
        summary = summarize(batch)
        with self.write(experiment_id=experiment_id) as conn:
            if self.is_postgres:
                if len(batch) >= metric_writes.COPY_THRESHOLD:
                    overwritten = metric_writes.pg_copy(conn, experiment_id, batch, summary)
                else:
                    overwritten = metric_writes.pg_upsert(conn, experiment_id, batch)
            else:
                self._require(conn, experiments, "experiment_id", experiment_id, "experiment_id", whole=False)
                overwritten = metric_writes.sqlite_write(conn, experiment_id, batch, summary)
            metric_summary.advance_latest(conn, self.is_postgres, experiment_id, summary)
            if overwritten:
                metric_summary.refresh_latest(conn, self._insert, experiment_id, overwritten)
            self._note_writer(conn, experiment_id)  # the task writing (if any) belongs to the experiment
        return len(batch)

    # -- SQLite -------------------------------------------------------------------------------------
    # -- metric_latest ------------------------------------------------------------------------------
    # -- reads --------------------------------------------------------------------------------------
    def metric_history(
        self, experiment_id: int, name: str, evaluation_set: str = "test"
    ) -> list[dict[str, Any]]:
        """Every value of one metric of one split, by step (a step-less value first)."""
        experiment_id = v.entity_id("experiment_id", experiment_id)
        split = v.choice("evaluation_set", evaluation_set, EVALUATION_SETS)
        name = v.lookup_name("name", name) or ""
        query = (
            select(metrics.c.step, metrics.c.value, metrics.c.recorded_at)
            .where(
                metrics.c.experiment_id == experiment_id,
                metrics.c.name == name,
                metrics.c.evaluation_set == split,
            )
            .order_by(metrics.c.step.asc().nulls_first())
        )
        with self.read() as conn:
            return float_rows(rows(conn.execute(query)), null_is_nan=True)

    def metric_curves(self, experiment_ids: Iterable[int]) -> list[dict[str, Any]]:
        """All metric rows of the given experiments, in the order of the unique index (experiment, name,
        step, split) so no sort is needed; a step-less row sorts where the backend puts NULL (first on
        SQLite, last on PostgreSQL). Each row is converted once (NULL or old text 'NaN' -> NaN)."""
        ids = [v.entity_id("experiment_id", i) for i in experiment_ids]
        m = metrics
        query = (
            select(m.c.experiment_id, m.c.name, m.c.evaluation_set, m.c.step, m.c.value)
            .where(m.c.experiment_id.in_(ids))
            .order_by(m.c.experiment_id, m.c.name, m.c.step, m.c.evaluation_set)
        )
        with self.read() as conn:
            return [
                {
                    "experiment_id": e,
                    "name": name,
                    "evaluation_set": split,
                    "step": step,
                    "value": value if value.__class__ is float else as_float(value, null_is_nan=True),
                }
                for e, name, split, step, value in conn.execute(query)
            ]

    @staticmethod
    def final_values(where: Any) -> Select:
        """The reference definition of ``metric_latest`` rows (see :func:`metric_summary.final_values`)."""
        return metric_summary.final_values(where)

    def latest_metrics(self, experiment_id: int) -> list[LatestMetric]:
        """The final value of every metric of an experiment, per split, with best min/max."""
        experiment_id = v.entity_id("experiment_id", experiment_id)
        query = metric_summary.latest_query().where(metric_latest.c.experiment_id == experiment_id)
        with self.read() as conn:
            found = float_rows(rows(conn.execute(query)), null_is_nan=True)
            if not found:
                self._require(conn, experiments, "experiment_id", experiment_id, "experiment_id", whole=False)
        return cast("list[LatestMetric]", sorted(found, key=lambda r: (r["evaluation_set"], r["name"])))

    def leaderboard(
        self,
        project: str | int,
        metric: str,
        evaluation_set: str = "test",
        mode: str = "max",
        limit: int = 10,
        visible_dag_ids: Collection[str] | None = None,
        statuses: Collection[str] = RANKED_STATUSES,
    ) -> list[LeaderboardRow]:
        """Top ``limit`` experiments of ``project`` by the final value of ``metric`` on a split.

        Only finite final values are ranked (NaN and +-Infinity are left out), and only experiments whose
        status is in ``statuses``: by default Pending, Running and Completed, so a Failed or Cancelled run
        (a skipped task, a timed-out DAG run) does not rank with what it logged before it stopped.
        ``visible_dag_ids``: only experiments of these DAGs (and those without a DAG), filtered before the
        limit; None: all.
        """
        statuses = sorted(v.choice("statuses", s, EXPERIMENT_STATUSES) for s in statuses)
        split = v.choice("evaluation_set", evaluation_set, EVALUATION_SETS)
        metric = v.lookup_name("metric", metric) or ""
        mode = v.choice("mode", mode, ("max", "min"))
        limit = v.integer("limit", limit, minimum=1) or 10
        with self.read() as conn:
            project_id = self._lookup_project_id(conn, project)
            final = metric_latest
            order = final.c.value.desc() if mode == "max" else final.c.value.asc()
            query = (
                select(
                    experiments.c.experiment_id,
                    experiments.c.name,
                    experiments.c.status,
                    experiments.c.hyperparameters,
                    experiments.c.model_id,
                    experiments.c.dag_id,
                    experiments.c.run_id,
                    final.c.value,
                    final.c.step,
                )
                .join(final, final.c.experiment_id == experiments.c.experiment_id)
                .where(
                    experiments.c.project_id == project_id,
                    final.c.name == metric,
                    final.c.evaluation_set == split,
                    self.finite(final.c.value),
                    experiments.c.status.in_(statuses),
                )
                .order_by(order, experiments.c.experiment_id)
                .limit(limit)
            )
            # The one visibility condition of every list (before the LIMIT: WHERE applies to the select).
            query = only_readable(query, experiments.c.dag_id, visible_dag_ids)
            result = rows(conn.execute(query))
        for rank, row in enumerate(result, start=1):
            row["rank"] = rank
        return cast("list[LeaderboardRow]", result)

    def compare(
        self, experiment_ids: Sequence[int], visible_dag_ids: Collection[str] | None = None
    ) -> Comparison:
        """Side by side (1 to 100 experiments): experiments, hyperparameters (with the keys that differ)
        and final metrics with the best run of each; see :func:`airflow_mltrack.store.reads.compare.compare`."""
        from airflow_mltrack.store.reads.compare import compare

        return compare(cast("Any", self), experiment_ids, visible_dag_ids)


__all__ = ["RANKED_STATUSES", "MetricStore"]
