"""Our errors as MLflow's: the decorator every ``mltrack://`` store method wears, and the refusal helper."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from airflow_mltrack.errors import MLTrackError, NotFoundError


def mlflow_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Our errors as MlflowException: a missing row -> RESOURCE_DOES_NOT_EXIST, bad input ->
    INVALID_PARAMETER_VALUE (the codes MLflow's client and REST layer map to 404 and 400)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except NotFoundError as exc:
            raise MlflowException(str(exc), error_code=RESOURCE_DOES_NOT_EXIST) from exc
        except MLTrackError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc

    return wrapper


def invalid(message: str) -> MlflowException:
    """An INVALID_PARAMETER_VALUE MlflowException."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def missing(message: str) -> MlflowException:
    """A RESOURCE_DOES_NOT_EXIST MlflowException."""
    return MlflowException(message, error_code=RESOURCE_DOES_NOT_EXIST)


def run_key(run_id: Any) -> int:
    """Our experiment id of an MLflow run id; one that is not ours is MLflow's "Run '<id>' not found"."""
    from airflow_mltrack.mlflow.mapping import experiment_id_of

    try:
        return experiment_id_of(run_id)
    except MLTrackError:
        raise missing(f"Run '{run_id}' not found") from None
