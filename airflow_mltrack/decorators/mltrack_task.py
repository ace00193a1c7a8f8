"""``@task.mltrack``: a TaskFlow task whose run is an experiment.

Registered through provider info (``task-decorators``: name ``mltrack``, class-name
``airflow_mltrack.decorators.mltrack_task.mltrack_task``); Airflow 3.3's ``TaskDecoratorCollection``
resolves ``task.mltrack`` by importing that callable, exactly like ``@task.bash``.

    @task.mltrack(project="churn", model_id=register_model.output, dataset_id=3)
    def train(lr: float, epochs: int = 10, tracker=None) -> dict:
        for epoch in range(epochs):
            tracker.log_metric("loss", loss, step=epoch, evaluation_set="train")
        return {"accuracy": 0.93}

At the start of each try the task gets or creates the experiment linked to its task instance
(dag_id, run_id, task_id, map_index; each map index its own experiment), moves it to Running, logs the
hyperparameters, and pushes its id to the XCom key ``mltrack_experiment_id``.

The return value: ``None`` or anything that is not a dict, list or tuple (a model path, a number) is not
metrics and only goes to XCom. A dict, list or tuple is a metric payload, parsed by the one payload parser
(``store.payloads.parse_metrics``, as ``LogMetricsOperator`` parses it): every shape is logged, and
anything else (a ``model_path`` entry, ``{"val": {...}}``) fails the task naming the entry; return other
data with ``log_return=False`` (and log metrics with the tracker). NaN and infinity in the return value go
to XCom as ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (strict JSON), which the parser reads back.

``experiment`` may use the function's arguments and ``{map_index}`` (``"sweep-{lr}"``); a mapped task
instance whose name has no placeholder gets ``-<map_index>`` appended. A tracking store that is
unreachable never fails the task: see ``docs/status.md``. MLflow code in the function needs no setup: it
logs into the same experiment (``docs/mlflow.md``, "Inside @task.mltrack").
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory
from airflow.sdk.definitions.context import KNOWN_CONTEXT_KEYS

from airflow_mltrack.decorators.tracker import (
    DEFAULT_FLUSH_EVERY,
    DEFAULT_FLUSH_SECONDS,
    Tracker,
    _first_line,
    is_store_unavailable,
)
from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.reconcile.unsaved import unsaved_envelope
from airflow_mltrack.sdk.arguments import (
    check_name_format,
    check_static,
    experiment_name,
    is_dynamic,
    read_literals,
    template_paths,
)
from airflow_mltrack.sdk.links import ExperimentLink
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.models import EVALUATION_SETS, NAME_LEN
from airflow_mltrack.store.payloads import json_safe, parse_metrics
from airflow_mltrack.vocabulary import (
    DEFAULT_CONN_ID,
    PLACEHOLDER_DATA_TYPE,
    PLACEHOLDER_DATASET,
    PLACEHOLDER_FRAMEWORK,
    XCOM_EXPERIMENT_ID,
    XCOM_UNSAVED,
    experiment_ref,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.bases.decorator import TaskDecorator

    from airflow_mltrack.store import TrackingStore

log = logging.getLogger(__name__)

TRACKER_ARG = "tracker"
_MAX_PARAM_STR = 500


def _as_id(value: Any) -> Any:
    """Rendered templates give strings: ``"3"`` -> 3; anything else is left for the store to judge."""
    ref = experiment_ref(value)
    return value if ref is None else ref


def _json_scalar(value: Any) -> bool:
    if isinstance(value, bool | int) or value is None:
        return True
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return isinstance(value, str) and len(value) <= _MAX_PARAM_STR


def _mlflow_in_task(conn_id: str, experiment_id: int | None) -> Any:
    """MLflow pointed at this experiment while the function runs (docs/mlflow.md; mlflow imported lazily)."""
    from airflow_mltrack.mlflow.in_task import mlflow_in_task

    return mlflow_in_task(conn_id, experiment_id)


def _check_literals(python_callable: Callable, arguments: Mapping[str, Any]) -> None:
    """Refuse bad literal arguments when the DAG is parsed (templates and XComArgs wait for the run)."""
    get = arguments.get
    check_static("project", get("project"), lambda f, x: v.name(f, x, NAME_LEN))
    check_static("evaluation_set", get("evaluation_set"), lambda f, x: v.choice(f, x, EVALUATION_SETS))
    for field in ("model_id", "dataset_id"):
        check_static(field, get(field), lambda f, x: v.entity_id(f, _as_id(x)))
    check_static("hyperparameters", get("hyperparameters"), _hyperparameters)
    check_static("flush_every", get("flush_every"), lambda f, x: v.integer(f, x, minimum=1))
    experiment = get("experiment")
    if experiment_ref(experiment) is None and not is_dynamic(experiment):
        allowed = {"map_index", *inspect.signature(python_callable).parameters} - {TRACKER_ARG}
        check_name_format("experiment", experiment, allowed)
        if experiment not in (None, ""):
            v.name("experiment", experiment, NAME_LEN)


def _hyperparameters(field: str, value: Any) -> dict[str, Any] | None:
    """The ``hyperparameters`` argument as a dict: a dict, or a JSON object string."""
    if isinstance(value, str):
        return v.json_object(field, value) if value.strip() else None
    if value is not None and not isinstance(value, Mapping):
        raise MLTrackError(field, value, "must be a dict (or a JSON object string)")
    if value:
        v.json_object(field, value)
    return dict(value) if value else None


class _MLTrackDecoratedOperator(DecoratedOperator, PythonOperator):
    """Runs the decorated function as a tracked experiment (see the module docstring)."""

    template_fields: Sequence[str] = (
        "templates_dict",
        "op_args",
        "op_kwargs",
        "project",
        "experiment",
        "model_id",
        "dataset_id",
        "hyperparameters",
        "evaluation_set",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "templates_dict": "json",
        "op_args": "py",
        "op_kwargs": "py",
        "hyperparameters": "json",
    }
    custom_operator_name: str = "@task.mltrack"
    operator_extra_links = (ExperimentLink(),)

    def __init__(
        self,
        *,
        python_callable: Callable,
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        project: str,
        experiment: str | int | None = None,
        model_id: Any = None,
        dataset_id: Any = None,
        hyperparameters: Any = None,
        evaluation_set: str = "validation",
        mltrack_conn_id: str = DEFAULT_CONN_ID,
        log_kwargs: bool = True,
        log_return: bool = True,
        flush_every: int = DEFAULT_FLUSH_EVERY,
        flush_seconds: float | None = DEFAULT_FLUSH_SECONDS,
        **kwargs: Any,
    ) -> None:
        op_kwargs = dict(op_kwargs or {})
        self._takes_tracker = TRACKER_ARG in inspect.signature(python_callable).parameters
        if self._takes_tracker and TRACKER_ARG not in op_kwargs:
            op_kwargs[TRACKER_ARG] = None  # the real Tracker is passed in execute()
        super().__init__(
            kwargs_to_upstream={
                "python_callable": python_callable,
                "op_args": op_args,
                "op_kwargs": op_kwargs,
            },
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )
        self.project = project
        self.experiment = experiment
        self.model_id = model_id
        self.dataset_id = dataset_id
        self.hyperparameters = hyperparameters
        self.evaluation_set = evaluation_set
        self.mltrack_conn_id = mltrack_conn_id
        self.log_kwargs = log_kwargs
        self.log_return = log_return
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._hyperparameter_templates = template_paths(hyperparameters)
        _check_literals(python_callable, vars(self))

    # -- execution -------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        params = self._params()
        self._name = self._experiment_name(ti.map_index)
        self._check_inputs(params)
        tracker = self._start(ti, params)
        if tracker.experiment_id is not None:
            ti.xcom_push(key=XCOM_EXPERIMENT_ID, value=tracker.experiment_id)
            self.mltrack_experiment_id = tracker.experiment_id  # as the operators do, for the extra link
        if self._takes_tracker:
            self.op_kwargs = {**self.op_kwargs, TRACKER_ARG: tracker}
        try:
            with _mlflow_in_task(self.mltrack_conn_id, tracker.experiment_id):
                result = super().execute(context)
            tracker.log_rows(self._returned_rows(result))
        except BaseException as exc:
            from airflow.sdk.exceptions import AirflowSkipException

            if isinstance(exc, AirflowSkipException):  # the status listener's Cancelled reason
                self.mltrack_skip_reason = str(exc) or None
            self._finish(ti, tracker)
            raise
        self._finish(ti, tracker)
        return json_safe(result)  # XCom is strict JSON: NaN travels as "NaN"

    def _returned_rows(self, result: Any) -> list[Any]:
        """The metric rows of the return value (see the module docstring); a bad payload raises."""
        if not self.log_return or not isinstance(result, Mapping | list | tuple):
            return []
        skipped: list[str] = []
        try:
            rows = parse_metrics(result, self.evaluation_set, field="return_value", not_metrics=skipped)
        except MLTrackError as exc:
            raise MLTrackError(
                exc.field,
                exc.value,
                f"{exc.reason} (a dict or list returned by @task.mltrack is a metric payload: return "
                "metrics only, or set log_return=False)",
            ) from None
        if skipped:
            log.info("mltrack: returned %s kept in XCom only (text, bool or None: not metrics)", skipped)
        return rows

    def _params(self) -> dict[str, Any]:
        """Hyperparameters: the function's JSON-scalar arguments, defaults included (``log_kwargs``), then
        ``hyperparameters`` (which wins on a clash)."""
        params: dict[str, Any] = {}
        if self.log_kwargs:
            params.update({k: v for k, v in self._call_arguments().items() if _json_scalar(v)})
        extra = _hyperparameters("hyperparameters", self.hyperparameters)
        if extra:
            params.update(read_literals(extra, self._hyperparameter_templates))
        return params

    def _check_inputs(self, params: dict[str, Any]) -> None:
        """Refuse bad arguments before anything is written (no placeholder model or dataset left behind)."""
        v.name("project", self.project, NAME_LEN)
        if experiment_ref(self.experiment) is None:
            v.name("experiment", self._name, NAME_LEN)
        self.evaluation_set = v.choice("evaluation_set", self.evaluation_set, EVALUATION_SETS)
        for field in ("model_id", "dataset_id"):
            if getattr(self, field) is not None:
                v.entity_id(field, _as_id(getattr(self, field)))
        v.json_object("hyperparameters", params)

    def _call_arguments(self) -> dict[str, Any]:
        """The function's arguments for this call, defaults included (no tracker, no context keys)."""
        signature = inspect.signature(self.python_callable)
        try:
            bound = signature.bind_partial(*self.op_args, **self.op_kwargs)
        except TypeError:
            arguments: dict[str, Any] = dict(self.op_kwargs)
        else:
            bound.apply_defaults()
            arguments = {}
            for name, value in bound.arguments.items():
                kind = signature.parameters[name].kind
                if kind == inspect.Parameter.VAR_KEYWORD:
                    arguments.update(value)
                elif kind != inspect.Parameter.VAR_POSITIONAL:
                    arguments[name] = value
        return {k: v for k, v in arguments.items() if k != TRACKER_ARG and k not in KNOWN_CONTEXT_KEYS}

    def _experiment_name(self, map_index: int | None) -> str:
        """The experiment's name: ``experiment`` (or the task id) filled in for this call (see the module
        docstring)."""
        name = self.experiment
        if experiment_ref(name) is not None:
            return str(name).strip()
        name = str(name).strip() if name not in (None, "") else self.task_id
        return experiment_name("experiment", name, self._call_arguments(), map_index)

    def _start(self, ti: Any, params: dict[str, Any]) -> Tracker:
        """Get/create the experiment and move it to Running; an unreachable store gives an offline Tracker."""
        from airflow_mltrack.errors import MLTrackError
        from airflow_mltrack.hooks.mltrack import MLTrackHook

        store: TrackingStore | None = None
        experiment_id: int | None = None
        try:
            store = MLTrackHook(mltrack_conn_id=self.mltrack_conn_id).get_store()
            experiment_id = self._get_or_create(store, ti, params)
            try:
                store.set_status(experiment_id, "Running")
            except MLTrackError as exc:
                if is_store_unavailable(exc):
                    raise
                # e.g. a cleared task re-running a Completed experiment: keep logging into it.
                log.warning("mltrack: experiment %s stays as it is: %s", experiment_id, exc)
        except Exception as exc:
            if not is_store_unavailable(exc):
                raise
            log.warning(
                "mltrack: the tracking store is unavailable (%s: %s); training continues untracked and "
                "its metrics go to the XCom %r for a later backfill.",
                type(exc).__name__,
                _first_line(exc),
                XCOM_UNSAVED,
            )
            store, experiment_id = None, None
        tracker = Tracker(
            store,
            experiment_id,
            evaluation_set=self.evaluation_set,
            flush_every=self.flush_every,
            flush_seconds=self.flush_seconds,
        )
        if store is None:
            tracker._params.update(params)
            tracker._warned = True  # warned above
        else:
            log.info("mltrack: logging into experiment %s (project %s)", experiment_id, self.project)
        return tracker

    def _get_or_create(self, store: TrackingStore, ti: Any, params: dict[str, Any]) -> int:
        existing = experiment_ref(self.experiment)
        if existing is not None:
            if params:
                store.log_hyperparameters(existing, params)
            else:
                store.get_experiment(existing)  # a clear NotFoundError for a wrong id
            return existing
        name = self._name
        model_id = _as_id(self.model_id)
        dataset_id = _as_id(self.dataset_id)
        self._check_project(store, "model_id", model_id, store.get_model)
        self._check_project(store, "dataset_id", dataset_id, store.get_dataset)
        if model_id is None:
            model_id = store.register_model(self.project, name, framework=PLACEHOLDER_FRAMEWORK)
        if dataset_id is None:
            dataset_id = store.register_dataset(
                self.project, PLACEHOLDER_DATASET, data_type=PLACEHOLDER_DATA_TYPE
            )
        return store.create_experiment(
            self.project,
            name,
            model_id,
            dataset_id,
            hyperparameters=params or None,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=ti.map_index if ti.map_index is not None else -1,
            try_number=ti.try_number,
        )

    def _check_project(self, store: TrackingStore, field: str, entity_id: Any, get: Callable) -> None:
        """A given model or dataset must exist in this project before placeholders are registered."""
        from airflow_mltrack.errors import NotFoundError

        if entity_id is None:
            return
        owner = get(entity_id)["project_id"]
        try:
            same = store.get_project(str(self.project).strip())["project_id"] == owner
        except NotFoundError:
            same = False
        if not same:
            owner_name = store.get_project(owner)["name"]
            raise MLTrackError(
                field, entity_id, f"belongs to project {owner_name!r}, not to {str(self.project).strip()!r}"
            )

    def _finish(self, ti: Any, tracker: Tracker) -> None:
        """Flush, push what could not be written. Never raises."""
        try:
            tracker.flush()
        except Exception as exc:
            log.warning("mltrack: could not write metrics (%s: %s)", type(exc).__name__, _first_line(exc))
            tracker._lose_store(exc)
        try:
            from airflow_mltrack.hooks.mltrack import redact_secrets

            rows = tracker.unsaved_rows()
            params = tracker.unsaved_params()
            if rows or params or tracker.experiment_id is None:
                envelope = unsaved_envelope(
                    experiment_id=tracker.experiment_id,
                    project=self.project,
                    experiment=self._name,
                    evaluation_set=self.evaluation_set,
                    hyperparameters=redact_secrets(params),  # XCom is shown in the UI
                    metrics=rows,
                )
                ti.xcom_push(key=XCOM_UNSAVED, value=envelope)
                log.warning("mltrack: %d metric rows not saved; pushed to XCom %r", len(rows), XCOM_UNSAVED)
        except Exception:
            log.exception("mltrack: could not push the unsaved metrics to XCom")


def mltrack_task(python_callable: Callable | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.mltrack(project, experiment=None, model_id=None, dataset_id=None, hyperparameters=None,
    evaluation_set="validation", mltrack_conn_id="mltrack_default", log_kwargs=True, log_return=True,
    flush_every=1000, flush_seconds=10)`` plus any BaseOperator argument (retries, ...).

    The function may take a ``tracker`` argument (:class:`~airflow_mltrack.decorators.tracker.Tracker`).
    """
    decorator = task_decorator_factory(
        python_callable=python_callable,
        decorated_operator_class=_MLTrackDecoratedOperator,
        **kwargs,
    )
    if python_callable is not None:
        _check_literals(python_callable, kwargs)
        return decorator

    def checked(function: Callable) -> Any:
        # Here, not only in __init__: a mapped task (.expand) builds its operator only when it runs.
        _check_literals(function, kwargs)
        return decorator(function)  # type: ignore[operator]

    return checked  # type: ignore[return-value]
