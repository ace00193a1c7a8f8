"""MLflow runs as the JSON of their ``Run`` message, built directly (``search_runs`` pages of 100 runs).

Protobuf's JSON printer walks every field of every metric, param and tag (a third of a 100-run search's
time); here the run's inputs and outputs still go through the printer, and its info and data (the bulk)
are built as the printer would write them: lists omitted when empty, non-finite values as ``"NaN"``,
``"Infinity"``, ``"-Infinity"``, int64 fields as numbers (tests/mlflow/test_batched_reads.py compares both).
"""

from __future__ import annotations

import functools
import json
import math
from types import SimpleNamespace
from typing import Any

from mlflow.protos.service_pb2 import Run as ProtoRun
from mlflow.utils import proto_json_utils

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _message_dict(message: Any) -> dict[str, Any]:
    """The JSON object MLflow's ``message_to_json`` writes for ``message`` (int64 as numbers)."""
    printer = getattr(proto_json_utils, "_message_to_dict_with_int64_numbers", None)
    if printer is not None:
        return printer(message)
    return json.loads(proto_json_utils.message_to_json(message, pretty=False))  # pragma: no cover


@functools.lru_cache(maxsize=256)
def _io_json(serialized: bytes) -> dict[str, Any]:
    """The printed JSON of a ``Run`` message holding only inputs and outputs, by its bytes: the runs of a
    page mostly list the same few datasets, printed once each. Shared between answers: never modified."""
    proto = ProtoRun()
    proto.ParseFromString(serialized)
    return _message_dict(proto)


def _double(value: float) -> Any:
    if value != value:
        return "NaN"
    return _NON_FINITE.get(value, value)


def _info_dict(info: Any, fix_info: Any) -> dict[str, Any]:
    """``RunInfo.to_proto()`` as the printer writes it (the fields it sets, the status by name); the
    artifact URI as ``fix_info`` makes it."""
    uri = SimpleNamespace(
        artifact_uri=info.artifact_uri or "", experiment_id=info.experiment_id, run_id=info.run_id
    )
    fix_info(uri)
    found: dict[str, Any] = {"run_uuid": info.run_id, "run_id": info.run_id}
    if info.run_name is not None:
        found["run_name"] = info.run_name
    found.update(experiment_id=info.experiment_id, user_id=info.user_id, status=info.status)
    if info.start_time is not None:
        found["start_time"] = info.start_time
    if info.end_time:
        found["end_time"] = info.end_time
    if uri.artifact_uri:
        found["artifact_uri"] = uri.artifact_uri
    found["lifecycle_stage"] = info.lifecycle_stage
    return found


def run_json(
    info: Any,
    metrics: list[dict[str, Any]],
    params: dict[str, str],
    tags: dict[str, str],
    io: Any,
    fix_info: Any,
) -> dict[str, Any]:
    """A run's message JSON from its parts: ``info`` (RunInfo's attributes), ``metrics`` (``key``, ``value``,
    ``timestamp``, ``step``), ``params``, ``tags``, ``io`` (``inputs`` and ``outputs``
    entities or None), ``fix_info`` (the REST artifact URI rule). Info and data are written directly (the
    printer took a third of a 100-run search); inputs and outputs (rarer, nested) go through the printer."""
    found: dict[str, Any] = {"info": _info_dict(info, fix_info)}
    inputs, outputs = io
    if inputs or outputs:
        proto = ProtoRun()
        if inputs:
            proto.inputs.MergeFrom(inputs.to_proto())
        if outputs:
            proto.outputs.MergeFrom(outputs.to_proto())
        found.update(_io_json(proto.SerializeToString(deterministic=True)))
    data: dict[str, Any] = {}
    if metrics:
        data["metrics"] = [{**x, "value": _double(x["value"])} for x in metrics]
    if params:
        data["params"] = [{"key": k, "value": v} for k, v in params.items()]
    if tags:
        data["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
    found["data"] = data
    return found
