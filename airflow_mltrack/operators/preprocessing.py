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

    :param project: project name; both datasets must belong to it.
    :param name: job name, e.g. ``"standardize"``.
    :param input_dataset_id: the source dataset (an id or a template rendering one).
    :param output_dataset_id: the derived dataset, if registered already.
    :param output_dataset: the derived dataset to register (see above); not with ``output_dataset_id``.
    :param parameters: the job's parameters: a dict, or its JSON / Python-literal string.
    :param status: the job's status (default ``"Completed"``).
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
        **kwargs: Any,
    ) -> None:
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

    def execute(self, context: Context) -> int:
        store = self.store
        input_id = coerce_id("input_dataset_id", self.input_dataset_id)
        output_id = coerce_id("output_dataset_id", self.output_dataset_id, required=False)
        parameters = coerce_structure("parameters", self.parameters)
        # The derived dataset is registered in the job's own transaction: a refused job leaves no dataset.
        job_id = store.record_preprocessing_job(
            self.project,
            self.name,
            input_id,
            output_dataset_id=output_id,
            parameters=parameters,
            status=self.status,
            output_dataset=self._output_spec(),
            **self.airflow_link(context),
        )
        output_id = store.get_preprocessing_job(job_id)["output_dataset_id"]
        if output_id is not None:
            context["ti"].xcom_push(key=OUTPUT_DATASET_XCOM_KEY, value=output_id)
        self.log.info("preprocessing job %s: dataset %s -> %s", job_id, input_id, output_id)
        return job_id

    def _output_spec(self) -> dict[str, Any] | None:
        spec = coerce_structure("output_dataset", self.output_dataset)
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
        values = dict(spec)
        if "tags" in values:
            values["tags"] = coerce_tags("output_dataset.tags", values["tags"])
        return drop_none(values) | {"name": spec["name"], "data_type": spec["data_type"]}
