"""Record a preprocessing job: one dataset turned into a derived dataset (the lineage between them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mltrack.errors import MLTrackError
from airflow_mltrack.operators.base import (
    MLTrackBaseOperator,
    coerce_id,
    coerce_structure,
    coerce_tags,
    drop_none,
)
from airflow_mltrack.operators.catalog import (
    check_dataset_fields,
    dataset_event_extra,
    existing_dataset_id,
    static_dataset_asset,
)
from airflow_mltrack.sdk.arguments import check_static, is_dynamic
from airflow_mltrack.store import validation as v
from airflow_mltrack.store.models import JOB_STATUSES, NAME_LEN

if TYPE_CHECKING:
    from airflow.sdk import Context

OUTPUT_DATASET_KEYS = frozenset(
    {"name", "data_type", "version", "description", "source_url", "size_bytes", "num_records", "tags"}
)
OUTPUT_DATASET_XCOM_KEY = "output_dataset_id"


class PreprocessingJobOperator(MLTrackBaseOperator):
    """Record that ``input_dataset_id`` was turned into ``output_dataset_id``; returns (XCom) the job id.

    The operator records the job; the transformation itself runs in an upstream task (whose results,
    e.g. row counts, can feed the parameters through templates). Give the derived dataset either as
    ``output_dataset_id`` (registered already) or as ``output_dataset``, a dict of
    :class:`RegisterDatasetOperator` arguments (``name`` and ``data_type`` required; ``version``,
    ``description``, ``source_url``, ``size_bytes``, ``num_records``, ``tags``): it is registered (or
    found) in the same project and linked. The output dataset id is also pushed as XCom
    ``output_dataset_id``, so ``ti.xcom_pull(task_ids=..., key="output_dataset_id")`` gets it.

    The job is idempotent on this task instance (a retry updates the same job row).

    A derived dataset registered here gets an Asset event, as :class:`RegisterDatasetOperator` gives
    one: the task's outlet is ``dataset_asset(project, output_dataset["name"])`` when both are plain
    strings (not templates), with the same ``extra`` plus ``job_id`` and ``input_dataset_id``.
    ``emit_asset_event=False`` declares none. Arguments that are not templates are checked when the DAG
    is parsed; templated entries of ``parameters`` and ``output_dataset`` are read as Python literals.

    :param project: project name; both datasets must belong to it.
    :param name: job name, e.g. ``"standardize"``.
    :param input_dataset_id: the source dataset (an id or a template rendering one).
    :param output_dataset_id: the derived dataset, if registered already.
    :param output_dataset: the derived dataset to register (see above); not with ``output_dataset_id``.
    :param parameters: the job's parameters: a dict, or its JSON / Python-literal string.
    :param status: the job's status (default ``"Completed"``).
    :param emit_asset_event: set False to declare no Asset outlet for ``output_dataset``.
    """

    template_fields: Sequence[str] = (
        "project",
        "name",
        "input_dataset_id",
        "output_dataset_id",
        "output_dataset",
        "parameters",
        "status",
    )
    template_fields_renderers = {"parameters": "json", "output_dataset": "json"}
    literal_fields = ("parameters", "output_dataset")

    def __init__(
        self,
        *,
        project: str,
        name: str,
        input_dataset_id: int | str,
        output_dataset_id: int | str | None = None,
        output_dataset: Mapping[str, Any] | str | None = None,
        parameters: Mapping[str, Any] | str | None = None,
        status: str = "Completed",
        emit_asset_event: bool = True,
        **kwargs: Any,
    ) -> None:
        self.asset = None
        if emit_asset_event and "outlets" not in kwargs and isinstance(output_dataset, Mapping):
            self.asset = static_dataset_asset(project, output_dataset.get("name"))
            if self.asset is not None:
                kwargs["outlets"] = [self.asset]
        super().__init__(**kwargs)
        if output_dataset_id is not None and output_dataset is not None:
            raise MLTrackError(
                "output_dataset", output_dataset, "give output_dataset or output_dataset_id, not both"
            )
        self.project = project
        self.name = name
        self.input_dataset_id = input_dataset_id
        self.output_dataset_id = output_dataset_id
        self.output_dataset = output_dataset
        self.parameters = parameters
        self.status = status
        self.remember_templates()
        for field in ("project", "name"):
            check_static(field, getattr(self, field), lambda f, x: v.name(f, x, NAME_LEN))
        check_static("input_dataset_id", input_dataset_id, coerce_id)
        check_static("output_dataset_id", output_dataset_id, lambda f, x: coerce_id(f, x, required=False))
        check_static("parameters", parameters, lambda f, x: v.json_object(f, coerce_structure(f, x)))
        check_static("status", status, lambda f, x: v.choice(f, x, JOB_STATUSES))
        if isinstance(output_dataset, Mapping) or not (output_dataset is None or is_dynamic(output_dataset)):
            self._output_spec(output_dataset, at_parse=True)

    def execute(self, context: Context) -> int:
        store = self.store
        input_id = coerce_id("input_dataset_id", self.input_dataset_id)
        output_id = coerce_id("output_dataset_id", self.output_dataset_id, required=False)
        parameters = coerce_structure("parameters", self.native("parameters"))
        spec = self._output_spec(self.native("output_dataset"))
        existed = None
        if spec is not None and self.asset is not None:
            existed = existing_dataset_id(store, self.project, spec["name"], spec.get("version", "1.0"))
        # The derived dataset is registered in the job's own transaction: a refused job leaves no dataset.
        job_id = store.record_preprocessing_job(
            self.project,
            self.name,
            input_id,
            output_dataset_id=output_id,
            parameters=parameters,
            status=self.status,
            output_dataset=spec,
            **self.airflow_link(context),
        )
        self.mltrack_job_id = job_id  # for the OpenLineage report (get_openlineage_facets_on_complete)
        output_id = store.get_preprocessing_job(job_id)["output_dataset_id"]
        if output_id is not None:
            context["ti"].xcom_push(key=OUTPUT_DATASET_XCOM_KEY, value=output_id)
        if self.asset is not None and output_id is not None:
            extra = dataset_event_extra(store, self.project, output_id, new_version=existed is None)
            extra |= {"job_id": job_id, "input_dataset_id": input_id}
            context["outlet_events"][self.asset].extra = extra
        self.log.info("preprocessing job %s: dataset %s -> %s", job_id, input_id, output_id)
        return job_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional extra): input dataset -> derived dataset, the job's parameters as a run
        facet (see ``lineage.py``)."""
        from airflow_mltrack.operators import lineage

        return lineage.preprocessing(self.store, self.project, getattr(self, "mltrack_job_id", None))

    def _output_spec(self, value: Any, *, at_parse: bool = False) -> dict[str, Any] | None:
        """``output_dataset`` checked: known keys, ``name`` and ``data_type`` given; at parse time, only
        its literal entries are checked further (as the store checks them)."""
        spec = coerce_structure("output_dataset", value)
        if spec is None:
            return None
        unknown = set(spec) - OUTPUT_DATASET_KEYS
        if unknown:
            raise MLTrackError(
                "output_dataset",
                sorted(unknown)[0],
                f"unknown key; allowed: {', '.join(sorted(OUTPUT_DATASET_KEYS))}",
            )
        for key in ("name", "data_type"):
            if key not in spec:
                raise MLTrackError(f"output_dataset.{key}", None, "is required")
        if at_parse:
            check_dataset_fields("output_dataset.", dict(spec))
            return None
        values = dict(spec)
        if "tags" in values:
            values["tags"] = coerce_tags("output_dataset.tags", values["tags"])
        return drop_none(values) | {"name": spec["name"], "data_type": spec["data_type"]}
