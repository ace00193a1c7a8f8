"""MLflow compatibility, the in-task way in: unmodified ``mlflow`` code writes into our store.

``MLFLOW_TRACKING_URI=mltrack://<conn_id>`` selects :class:`~airflow_mltrack.mlflow.store.MLTrackMlflowStore`
(entry point ``mlflow.tracking_store``); inside an Airflow task
:class:`~airflow_mltrack.mlflow.context.AirflowRunContext` (entry point ``mlflow.run_context_provider``)
links each run to the task instance. ``mapping`` holds the pure translations (docs/mlflow.md).

Importing this package does not import ``mlflow`` (an optional extra: ``airflow-mltrack[mlflow]``).
"""

SCHEME = "mltrack"
"""The tracking URI scheme: ``mltrack://<conn_id>`` (``mltrack://`` alone: the default connection)."""
