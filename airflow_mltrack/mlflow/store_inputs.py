"""A run's inputs and outputs on ``mltrack://`` (MLflow's log-inputs / log-outputs): a mixin of
:class:`~airflow_mltrack.mlflow.store.MLTrackMlflowStore`.

An MLflow dataset is one of our ``datasets`` (name, digest as version, source URL, records); its source type,
source, schema and profile are dataset tags. The experiment's own dataset moves from the placeholder to the
first dataset logged, then to the first one logged with context ``training``/``train``; every dataset input
(with its input tags), model input and model output is listed in a JSON run tag (docs/mlflow.md)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    RunInputs,
    RunOutputs,
)

from airflow_mltrack.mlflow import mapping as m
from airflow_mltrack.mlflow.exceptions import invalid, mlflow_errors, run_key
from airflow_mltrack.store.reads.mlflow_runs import DatasetRecord
from airflow_mltrack.store.tags import MAX_TAG_VALUE_LEN
from airflow_mltrack.vocabulary import PLACEHOLDER_DATASET, PLACEHOLDER_FRAMEWORK

if TYPE_CHECKING:
    from airflow_mltrack.store import TrackingStore


def check_active(row: dict[str, Any], run_id: Any) -> None:
    """MLflow's rule: nothing is logged to a deleted run."""
    if row.get("deleted_at") is not None:
        raise invalid(f"The run {run_id} must be in the 'active' state. Current state is deleted.")


class RunInputsMixin:
    """``log_inputs``, ``log_outputs`` and the RunInputs / RunOutputs ``get_run`` gives back."""

    tracking: TrackingStore

    @mlflow_errors
    def log_inputs(self, run_id: str, datasets: Any = None, models: Any = None) -> None:
        store = self.tracking
        experiment_id = run_key(run_id)
        row = store.get_experiment(experiment_id)
        check_active(row, run_id)
        tags = store.tag_values("experiment", experiment_id)
        entries = m.json_list(tags.get(m.DATASET_INPUTS_TAG))
        contexts = {e.get("dataset_id"): (e.get("tags") or {}).get(m.CONTEXT_TAG) for e in entries}
        current = row["dataset_id"]
        placeholder = row.get("dataset_name") == PLACEHOLDER_DATASET
        training = contexts.get(current) in m.TRAINING_CONTEXTS
        move_to = None
        for given in datasets or []:
            dataset_id = self._register_dataset(store, int(row["project_id"]), given.dataset)
            input_tags = {t.key: t.value for t in given.tags or []}
            entry = next((e for e in entries if e.get("dataset_id") == dataset_id), None)
            if entry is None:
                entries.append({"dataset_id": dataset_id, "tags": input_tags})
            else:  # logged again: its place kept, its input tags the latest
                entry["tags"] = input_tags
            if placeholder and move_to is None:
                move_to = dataset_id
            if input_tags.get(m.CONTEXT_TAG) in m.TRAINING_CONTEXTS and not training:
                move_to, training = dataset_id, True
        model_ids = [int(x) for x in m.json_list(tags.get(m.MODEL_INPUTS_TAG))]
        for given in models or []:
            model_id = m.model_id_of(given.model_id)
            store.get_model(model_id)  # RESOURCE_DOES_NOT_EXIST for an unknown model
            if model_id not in model_ids:
                model_ids.append(model_id)
        values = {}
        if datasets:
            values[m.DATASET_INPUTS_TAG] = json.dumps(entries)
        if models:
            values[m.MODEL_INPUTS_TAG] = json.dumps(model_ids)
        if values:
            store.set_tags("experiment", experiment_id, values)
        if move_to is not None and move_to != current:
            store.link_experiment(experiment_id, dataset_id=move_to)

    @staticmethod
    def _register_dataset(store: TrackingStore, project_id: int, dataset: Any) -> int:
        fields = {
            "source_url": m.dataset_source_url(dataset.source),
            "num_records": m.dataset_records(dataset.profile),
        }
        dataset_id = store.register_dataset(
            project_id,
            dataset.name,
            data_type=m.dataset_data_type(dataset.schema),
            version=dataset.digest or "1.0",
            **{k: val for k, val in fields.items() if val is not None},
        )
        extra = {tag: getattr(dataset, attr) for attr, tag in m.DATASET_TAGS.items()}
        # lossy: a schema or profile longer than a tag value holds is not kept
        extra = {k: val for k, val in extra.items() if val is not None and len(val) <= MAX_TAG_VALUE_LEN}
        if extra:
            store.set_tags("dataset", dataset_id, extra)
        return dataset_id

    @mlflow_errors
    def log_outputs(self, run_id: str, models: Any) -> None:
        store = self.tracking
        experiment_id = run_key(run_id)
        row = store.get_experiment(experiment_id)
        check_active(row, run_id)
        entries = m.json_list(store.tag_values("experiment", experiment_id).get(m.MODEL_OUTPUTS_TAG))
        first = None
        for given in models or []:
            model_id = m.model_id_of(given.model_id)
            store.get_model(model_id)
            entry = {"model_id": model_id, "step": int(given.step or 0)}
            if entry not in entries:
                entries.append(entry)
            first = first or model_id
        if first is None:
            return
        store.set_tag("experiment", experiment_id, m.MODEL_OUTPUTS_TAG, json.dumps(entries))
        if store.get_model(row["model_id"])["framework"] == PLACEHOLDER_FRAMEWORK:
            store.link_experiment(experiment_id, model_id=first)

    @staticmethod
    def _io_entries(row: dict[str, Any], tags: dict[str, str | None]) -> list[dict[str, Any]]:
        """The dataset inputs of an experiment (its own dataset first when it is a real one that MLflow
        did not log, e.g. an operator's)."""
        entries = m.json_list(tags.get(m.DATASET_INPUTS_TAG))
        listed = [e.get("dataset_id") for e in entries]
        if row.get("dataset_name") != PLACEHOLDER_DATASET and row["dataset_id"] not in listed:
            entries.insert(0, {"dataset_id": row["dataset_id"], "tags": {}})
        return entries

    @staticmethod
    def _run_io(
        entries: list[dict[str, Any]], tags: dict[str, str | None], found: dict[int, DatasetRecord]
    ) -> tuple[RunInputs, RunOutputs]:
        """The RunInputs / RunOutputs of an experiment from its :meth:`_io_entries` and their datasets
        (loaded for the whole page by ``dataset_records``; one gone since is left out)."""
        dataset_inputs = []
        for entry in entries:
            record = found.get(int(entry["dataset_id"]))
            if record is None:
                continue
            dataset, extra = record["row"], record["tags"]
            source = extra.get(m.DATASET_TAGS["source"]) or json.dumps(
                {"uri": dataset.get("source_url") or ""}
            )
            found_dataset = Dataset(
                name=dataset["name"],
                digest=dataset["version"],
                source_type=extra.get(m.DATASET_TAGS["source_type"]) or "external",
                source=source,
                schema=extra.get(m.DATASET_TAGS["schema"]),
                profile=extra.get(m.DATASET_TAGS["profile"]),
            )
            input_tags = [InputTag(k, str(val)) for k, val in (entry.get("tags") or {}).items()]
            dataset_inputs.append(DatasetInput(found_dataset, input_tags))
        model_inputs = [
            LoggedModelInput(m.logged_model_id(int(x))) for x in m.json_list(tags.get(m.MODEL_INPUTS_TAG))
        ]
        outputs = [
            LoggedModelOutput(m.logged_model_id(int(e["model_id"])), int(e.get("step") or 0))
            for e in m.json_list(tags.get(m.MODEL_OUTPUTS_TAG))
        ]
        return RunInputs(dataset_inputs, model_inputs), RunOutputs(outputs)
