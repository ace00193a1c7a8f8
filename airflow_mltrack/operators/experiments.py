"""Experiments from DAGs: create one (idempotent per task instance), log metrics to it, set its status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.operators.base import (
    MLTrackBaseOperator,
    coerce_id,
    coerce_number,
    coerce_structure,
    coerce_tags,
    drop_none,
)
from airflow_mltrack.sdk.arguments import check_static
from airflow_mltrack.sdk.links import EXPERIMENT_ID_ATTR, ExperimentLink
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.models import EVALUATION_SETS, EXPERIMENT_STATUSES, NAME_LEN

if TYPE_CHECKING:
    from airflow.sdk import Context

# Experiments in these states are left alone by CreateExperimentOperator(status="Running") on a re-run.
_FINAL = frozenset({"Completed", "Cancelled"})


def _start_status(field: str, value: Any) -> str:
    status = value.strip().capitalize() if isinstance(value, str) else value
    if status not in ("Pending", "Running"):
        raise MLTrackError(field, value, "a new experiment starts as Pending or Running")
    return status


def _json_dict(field: str, value: Any) -> Any:
    return v.json_object(field, coerce_structure(field, value))


def _payload(field: str, value: Any) -> Any:
    from airflow_mltrack.store.payloads import parse_metrics

    return parse_metrics(coerce_structure(field, value, kinds=(dict, list)), field=field)


class CreateExperimentOperator(MLTrackBaseOperator):
    """Create an experiment linked to this task instance; returns (XCom) its id.

    The experiment is keyed on ``dag_id, run_id, task_id, map_index`` and ``name``: a retry, or the task
    cleared and run again, returns the same id (hyperparameters merged, ``try_number`` updated).

    ``model_id`` and ``dataset_id`` are usually templates such as
    ``"{{ ti.xcom_pull(task_ids='register_model') }}"``: rendered strings of digits are read as ids.

    :param project: project name (created if missing).
    :param name: experiment name.
    :param model_id: id of the model (of the same project).
    :param dataset_id: id of the dataset (of the same project).
    :param hyperparameters: a dict, or its JSON / Python-literal string (as a template renders it).
    :param code_version: e.g. a git commit.
    :param description: free text.
    :param notes: free text.
    :param tags: tag names (a list, or one string).
    :param status: ``"Running"`` (default): the experiment is started, since the DAG run is doing its
        work; a re-run moves a Failed experiment back to Running and leaves a Completed one as it is.
        ``"Pending"``: only create it (another task starts it, e.g. a ``@task.mltrack`` task or
        :class:`SetExperimentStatusOperator`).

    Arguments that are not templates are checked when the DAG is parsed; templated entries of
    ``hyperparameters`` are read as Python literals once rendered (``"{{ params.C }}"`` -> 0.5).
    """

    template_fields: Sequence[str] = (
        "project",
        "name",
        "model_id",
        "dataset_id",
        "hyperparameters",
        "code_version",
        "description",
        "notes",
        "tags",
        "status",
    )
    template_fields_renderers = {"hyperparameters": "json"}
    operator_extra_links = (ExperimentLink(),)
    literal_fields = ("hyperparameters",)

    def __init__(
        self,
        *,
        project: str,
        name: str,
        model_id: int | str,
        dataset_id: int | str,
        hyperparameters: dict[str, Any] | str | None = None,
        code_version: str | None = None,
        description: str | None = None,
        notes: str | None = None,
        tags: list[str] | str | None = None,
        status: str = "Running",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.name = name
        self.model_id = model_id
        self.dataset_id = dataset_id
        self.hyperparameters = hyperparameters
        self.code_version = code_version
        self.description = description
        self.notes = notes
        self.tags = tags
        self.status = status
        self.remember_templates()
        for field in ("project", "name"):
            check_static(field, getattr(self, field), lambda f, x: v.name(f, x, NAME_LEN))
        for field in ("model_id", "dataset_id"):
            check_static(field, getattr(self, field), coerce_id)
        check_static("hyperparameters", hyperparameters, _json_dict)
        check_static("tags", tags, lambda f, x: v.tag_names(f, coerce_tags(f, x)))
        check_static("status", status, _start_status)

    def execute(self, context: Context) -> int:
        status = _start_status("status", self.status)
        store = self.store
        experiment_id = store.create_experiment(
            self.project,
            self.name,
            coerce_id("model_id", self.model_id),
            coerce_id("dataset_id", self.dataset_id),
            hyperparameters=coerce_structure("hyperparameters", self.native("hyperparameters")),
            **drop_none(
                {
                    "code_version": self.code_version,
                    "description": self.description,
                    "notes": self.notes,
                    "tags": coerce_tags("tags", self.tags),
                }
            ),
            **self.airflow_link(context),
        )
        setattr(self, EXPERIMENT_ID_ATTR, experiment_id)
        current = store.get_experiment(experiment_id)["status"]
        if status == "Running" and current not in _FINAL:
            store.set_status(experiment_id, "Running")
        elif status == "Running":
            self.log.info("experiment %s is %s already: status left as it is", experiment_id, current)
        self.log.info("experiment %s (%s/%s)", experiment_id, self.project, self.name)
        return experiment_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional extra): training, the experiment's dataset -> its model (see ``lineage.py``)."""
        from airflow_mltrack.operators import lineage

        return lineage.training(self.store, getattr(self, EXPERIMENT_ID_ATTR, None))


class LogMetricsOperator(MLTrackBaseOperator):
    """Log metrics to an experiment: ``metrics`` if given, else the XComs of ``source_task_ids``.

    Every payload shape is accepted: ``{"accuracy": 0.93}``; ``{"loss": [0.9, 0.5]}`` (index = step);
    ``{"test": {...}, "train": {...}}`` (split first); rows ``[{"name", "value", "step",
    "evaluation_set"}]``. A mapped source task contributes the XCom of every map index. All payloads are
    checked first and written in one transaction, so a bad one writes nothing; logging the same metric
    again (a retry) replaces its value. Returns (XCom) the number of metric rows written.

    :param experiment_id: the experiment (an id or a template rendering one).
    :param metrics: a payload, or its JSON / Python-literal string.
    :param source_task_ids: task id(s) whose XCom (``xcom_key``) are payloads; used when ``metrics`` is
        None. A task without that XCom fails this task, naming the task.
    :param xcom_key: the XCom key to pull (default ``"return_value"``).
    :param evaluation_set: split for values that do not name one (default ``"test"``).
    :param step: step for values that give none.

    Arguments that are not templates are checked when the DAG is parsed (a literal ``metrics`` payload
    too). Templated entries of ``metrics`` are read as Python literals once rendered
    (``{"accuracy": "{{ params.acc }}"}`` logs a number); XCom payloads are taken as they are, with
    ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` read as those values.
    """

    template_fields: Sequence[str] = (
        "experiment_id",
        "metrics",
        "source_task_ids",
        "xcom_key",
        "evaluation_set",
        "step",
    )
    template_fields_renderers = {"metrics": "json"}
    operator_extra_links = (ExperimentLink(),)
    literal_fields = ("metrics",)

    def __init__(
        self,
        *,
        experiment_id: int | str,
        metrics: Any = None,
        source_task_ids: str | Iterable[str] | None = None,
        xcom_key: str = "return_value",
        evaluation_set: str = "test",
        step: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if metrics is None and not source_task_ids:
            raise MLTrackError("metrics", None, "give metrics or source_task_ids")
        self.experiment_id = experiment_id
        self.metrics = metrics
        self.source_task_ids = [source_task_ids] if isinstance(source_task_ids, str) else source_task_ids
        self.xcom_key = xcom_key
        self.evaluation_set = evaluation_set
        self.step = step
        self.remember_templates()
        check_static("experiment_id", experiment_id, coerce_id)
        check_static("evaluation_set", evaluation_set, lambda f, x: v.choice(f, x, EVALUATION_SETS))
        check_static("step", step, lambda f, x: x == "" or v.integer(f, coerce_number(f, x), minimum=0))
        check_static("metrics", metrics, _payload)

    def execute(self, context: Context) -> int:
        from airflow_mltrack.store.payloads import dedupe, parse_metrics

        experiment_id = coerce_id("experiment_id", self.experiment_id)
        setattr(self, EXPERIMENT_ID_ATTR, experiment_id)
        step = None if self.step in (None, "") else coerce_number("step", self.step)
        rows = []
        for field, payload in self._payloads(context):
            # A task's return value may carry data besides metrics (a model path): the same rule as
            # @task.mltrack's return value (store.payloads.parse_metrics, not_metrics).
            skipped: list[str] | None = None if field == "metrics" else []
            found = parse_metrics(payload, self.evaluation_set, step, field=field, not_metrics=skipped)
            if skipped and not found:  # asked to log this XCom and it holds no metric: say why
                parse_metrics(payload, self.evaluation_set, step, field=field)
            if skipped:
                self.log.info("%s: %s are not metrics (text, bool or None): not logged", field, skipped)
            rows.extend(found)
        batch = dedupe(rows)
        written = self.store.log_metric_rows(experiment_id, batch)
        self.log.info("experiment %s: %d metric rows written", experiment_id, written)
        return written

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional extra): training, the experiment's dataset -> its model (see ``lineage.py``)."""
        from airflow_mltrack.operators import lineage

        return lineage.training(self.store, getattr(self, EXPERIMENT_ID_ATTR, None))

    def _payloads(self, context: Context) -> list[tuple[str, Any]]:
        if self.metrics is not None:
            return [("metrics", coerce_structure("metrics", self.native("metrics"), kinds=(dict, list)))]
        task_ids = list(self.source_task_ids or [])
        known = getattr(self.dag, "task_dict", None) if self.has_dag() else None
        payloads: list[tuple[str, Any]] = []
        for task_id in task_ids:
            if not isinstance(task_id, str) or not task_id.strip():
                raise MLTrackError("source_task_ids", task_id, "must be task ids (strings)")
            if known is not None and task_id not in known:
                raise MLTrackError("source_task_ids", task_id, f"no task {task_id!r} in DAG {self.dag_id!r}")
            # A list of task ids pulls every map index of a mapped task (one value for an unmapped one).
            values = context["ti"].xcom_pull(task_ids=[task_id], key=self.xcom_key)
            values = [v for v in (values or []) if v is not None]
            if not values:
                raise MLTrackError(
                    f"xcom[{task_id}]",
                    None,
                    f"task {task_id!r} has no XCom {self.xcom_key!r} in this DAG run: nothing to log",
                )
            for index, value in enumerate(values):
                field = f"xcom[{task_id}]" if len(values) == 1 else f"xcom[{task_id}][{index}]"
                payloads.append((field, coerce_structure(field, value, kinds=(dict, list))))
        return payloads


class SetExperimentStatusOperator(MLTrackBaseOperator):
    """Move an experiment to ``status`` (Pending -> Running -> Completed | Failed | Cancelled, ...).

    Setting the status it already has is a no-op, so retries are safe; a move the rules forbid fails
    with a message naming the current status and the allowed next ones. Returns (XCom) the experiment id.
    Typical use: ``status="Failed"`` with ``trigger_rule="one_failed"`` after the training tasks, and
    ``status="Completed"`` with the default trigger rule.

    :param experiment_id: the experiment (an id or a template rendering one).
    :param status: Pending, Running, Completed, Failed or Cancelled.
    :param error: the failure reason (kept with status Failed).
    """

    template_fields: Sequence[str] = ("experiment_id", "status", "error")
    operator_extra_links = (ExperimentLink(),)

    def __init__(
        self,
        *,
        experiment_id: int | str,
        status: str,
        error: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.experiment_id = experiment_id
        self.status = status
        self.error = error
        check_static("experiment_id", experiment_id, coerce_id)
        check_static("status", status, lambda f, x: v.choice(f, x, EXPERIMENT_STATUSES))

    def execute(self, context: Context) -> int:
        experiment_id = coerce_id("experiment_id", self.experiment_id)
        setattr(self, EXPERIMENT_ID_ATTR, experiment_id)
        previous = self.store.set_status(experiment_id, self.status, error=self.error or None)
        self.log.info("experiment %s: %s -> %s", experiment_id, previous, self.status)
        return experiment_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional extra): training, the experiment's dataset -> its model (see ``lineage.py``)."""
        from airflow_mltrack.operators import lineage

        return lineage.training(self.store, getattr(self, EXPERIMENT_ID_ATTR, None))
