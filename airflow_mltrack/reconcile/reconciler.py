"""The :class:`Reconciler`: imports the metrics of source runs from XCom into the tracking store,
idempotently, and reports what happened to each run (:class:`ReconcileReport`).

Every write goes through the :class:`~airflow_mltrack.store.TrackingStore`; the reads that decide what is
already there are in :mod:`airflow_mltrack.store.reads.runs` and
:mod:`~airflow_mltrack.store.reads.metric_curves`. docs/backfill.md explains the outcomes.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.reconcile.sources import MISSING, RunSource, SourceRun
from airflow_mltrack.reconcile.spec import SourceSpec, as_utc
from airflow_mltrack.reconcile.unsaved import Unsaved, is_unsaved_envelope, parse_unsaved
from airflow_mltrack.store.payloads import dedupe, parse_metrics
from airflow_mltrack.store.reads.metric_curves import stored_metric_values
from airflow_mltrack.store.reads.runs import linked_experiments
from airflow_mltrack.vocabulary import (
    PLACEHOLDER_DATA_TYPE,
    PLACEHOLDER_FRAMEWORK,
    PLACEHOLDER_VERSION,
    XCOM_UNSAVED,
)

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore

log = logging.getLogger(__name__)

IMPORTED = "imported"
PRESENT = "already present"
SKIPPED = "skipped"


# -- the reconcile ----------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    """What happened to one run of one source."""

    dag_id: str
    task_id: str
    run_id: str
    when: dt.datetime | None
    outcome: str  # IMPORTED | PRESENT | SKIPPED
    rows: int = 0
    experiment_id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "when": self.when.isoformat() if self.when else None,
            "outcome": self.outcome,
            "rows": self.rows,
            "experiment_id": self.experiment_id,
            "reason": self.reason,
        }


@dataclass
class ReconcileReport:
    outcomes: list[RunOutcome] = field(default_factory=list)

    def of(self, outcome: str) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.outcome == outcome]

    @property
    def imported(self) -> int:
        return len(self.of(IMPORTED))

    @property
    def present(self) -> int:
        return len(self.of(PRESENT))

    @property
    def skipped(self) -> int:
        return len(self.of(SKIPPED))

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes)

    def summary(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "already_present": self.present,
            "skipped": self.skipped,
            "rows": self.rows,
            "experiment_ids": sorted({o.experiment_id for o in self.outcomes if o.experiment_id is not None}),
            "skipped_runs": [
                {"run_id": o.run_id, "task_id": o.task_id, "reason": o.reason} for o in self.of(SKIPPED)
            ],
        }


class Reconciler:
    """Imports XCom metrics of source runs into the tracking store, idempotently.

    For each run of a source in [start, end):

    - an experiment linked to the run (dag_id, run_id, task_id, map_index) that already has metrics of the
      source's evaluation set: **already present**, skipped without reading the XCom (cheap: two queries
      per 500 runs), so an interrupted backfill resumes where it stopped. ``verify=True`` reads the XCom
      anyway and upserts, reporting "already present" only when every value was already stored;
    - no XCom, or a payload ``parse_metrics`` refuses: **skipped** with the reason (the others go on);
    - otherwise **imported**: the metrics are upserted (one transaction) into the linked experiment,
      created (status Completed, name ``"{dag_id}.{task_id}"``) when none exists.

    An ``mltrack_unsaved`` envelope (:func:`parse_unsaved`) also brings hyperparameters (merged) and the
    experiment name (for a created experiment) or id (when no experiment is linked to the run). With the
    ``mltrack_unsaved`` key the XCom is always read, since a linked experiment with metrics is exactly the
    case of a store lost mid-task; a run is **already present** when every unsaved value is stored, or
    when it has a linked experiment and no such XCom (the task wrote everything).
    """

    def __init__(self, runs: RunSource, store: TrackingStore, *, verify: bool = False) -> None:
        self.runs = runs
        self.store = store
        self.verify = verify

    def plan(self, source: SourceSpec, start: Any, end: Any) -> list[SourceRun]:
        """The runs of ``source`` in [start, end), oldest first."""
        start_, end_ = as_utc(start), as_utc(end)
        if end_ <= start_:
            raise MLTrackError("end", end, f"must be after start ({start_.isoformat()})")
        return [
            r for r in self.runs.list_runs(source.dag_id, start_, end_) if _in_range(r.when, start_, end_)
        ]

    def reconcile(
        self,
        sources: Sequence[SourceSpec],
        start: Any,
        end: Any,
        *,
        on_plan: Callable[[SourceSpec, int], None] | None = None,
        on_run: Callable[[RunOutcome], None] | None = None,
    ) -> ReconcileReport:
        report = ReconcileReport()
        for source in sources:
            runs = self.plan(source, start, end)
            if on_plan:
                on_plan(source, len(runs))
            for outcome in self.reconcile_runs(source, runs):
                report.outcomes.append(outcome)
                if on_run:
                    on_run(outcome)
        return report

    def reconcile_runs(self, source: SourceSpec, runs: Sequence[SourceRun]) -> Iterator[RunOutcome]:
        linked = linked_experiments(
            self.store,
            source.dag_id,
            source.task_id,
            [r.run_id for r in runs],
            map_index=source.map_index,
            evaluation_set=source.evaluation_set,
        )
        catalog: dict[str, int] = {}
        for run in runs:
            yield self._one(source, run, linked.get(run.run_id), catalog)

    def _one(
        self, source: SourceSpec, run: SourceRun, linked: dict[str, Any] | None, catalog: dict[str, int]
    ) -> RunOutcome:
        outcome = RunOutcome(source.dag_id, source.task_id, run.run_id, run.when, SKIPPED)
        # An mltrack_unsaved XCom holds exactly the rows the linked experiment lacks: always read it.
        unsaved_key = source.xcom_key == XCOM_UNSAVED
        if linked is not None:
            outcome.experiment_id = linked["experiment_id"]
            if linked["metric_count"] and not self.verify and not unsaved_key:
                outcome.outcome = PRESENT
                return outcome
        try:
            payload = self.runs.get_xcom(
                source.dag_id, run.run_id, source.task_id, source.xcom_key, source.map_index
            )
        except MLTrackError as exc:
            outcome.reason = f"cannot read XCom: {exc}"
            return outcome
        if payload is MISSING or payload is None:
            if unsaved_key and linked is not None:
                outcome.outcome = PRESENT  # the task wrote everything: nothing was left unsaved
                return outcome
            outcome.reason = f"no XCom {source.xcom_key!r} for task {source.task_id!r}"
            return outcome
        where = f"xcom[{source.xcom_key}]"
        try:
            if is_unsaved_envelope(payload):
                found = parse_unsaved(payload, source.evaluation_set, where)
            else:
                found = Unsaved(dedupe(parse_metrics(payload, source.evaluation_set, field=where)))
        except MLTrackError as exc:
            outcome.reason = f"malformed payload: {exc}"
            log.warning("run %s of %s.%s: %s", run.run_id, source.dag_id, source.task_id, outcome.reason)
            return outcome
        if not found.rows and not found.hyperparameters:
            outcome.reason = f"XCom {source.xcom_key!r} holds nothing to import"
            return outcome
        experiment_id = outcome.experiment_id if outcome.experiment_id is not None else found.experiment_id
        if (
            experiment_id is not None
            and (self.verify or found.envelope)
            and self._stored(experiment_id, found)
        ):
            outcome.experiment_id = experiment_id
            outcome.outcome = PRESENT
            return outcome
        if experiment_id is None:
            experiment_id = self._create_experiment(source, run, catalog, found)
        elif found.hyperparameters:
            self.store.log_hyperparameters(experiment_id, found.hyperparameters)
        outcome.rows = self.store.log_metric_rows(experiment_id, found.rows)
        outcome.experiment_id = experiment_id
        outcome.outcome = IMPORTED
        return outcome

    def _stored(self, experiment_id: int, found: Unsaved) -> bool:
        """Is every row (and hyperparameter) of ``found`` already stored with the same value?"""
        stored = stored_metric_values(self.store, experiment_id, {r.name for r in found.rows})
        if not all(_same(stored.get((r.name, r.step, r.evaluation_set)), r.value) for r in found.rows):
            return False
        if not found.hyperparameters:
            return True
        params = self.store.get_experiment(experiment_id).get("hyperparameters") or {}
        return all(key in params and params[key] == value for key, value in found.hyperparameters.items())

    def _create_experiment(
        self, source: SourceSpec, run: SourceRun, catalog: dict[str, int], found: Unsaved
    ) -> int:
        if "model_id" not in catalog:
            self.store.ensure_project(source.project)
            if source.model_id is not None and source.dataset_id is not None:
                catalog["model_id"], catalog["dataset_id"] = source.model_id, source.dataset_id
            else:
                catalog["dataset_id"] = self.store.register_dataset(
                    source.project,
                    source.placeholder_name,
                    PLACEHOLDER_DATA_TYPE,
                    PLACEHOLDER_VERSION,
                    description="placeholder registered by a metric backfill (the run's real dataset is unknown)",
                )
                catalog["model_id"] = self.store.register_model(
                    source.project,
                    source.placeholder_name,
                    PLACEHOLDER_FRAMEWORK,
                    PLACEHOLDER_VERSION,
                    description="placeholder registered by a metric backfill (the run's real model is unknown)",
                )
        return self.store.create_experiment(
            source.project,
            source.experiment_name or found.experiment or source.placeholder_name,
            catalog["model_id"],
            catalog["dataset_id"],
            hyperparameters=found.hyperparameters or None,
            description=f"metrics imported from XCom {source.xcom_key!r} of {source.dag_id}.{source.task_id}",
            status="Completed",
            dag_id=source.dag_id,
            run_id=run.run_id,
            task_id=source.task_id,
            map_index=source.map_index,
        )


def _same(stored: float | None, value: float) -> bool:
    if stored is None:
        return False
    if math.isnan(stored) and math.isnan(value):
        return True
    return stored == value


def _in_range(when: dt.datetime | None, start: dt.datetime, end: dt.datetime) -> bool:
    return when is not None and start <= as_utc(when) < end
