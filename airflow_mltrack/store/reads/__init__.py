"""Reads beyond the TrackingStore's own methods, grouped by what they read (docs/architecture.md).

- :mod:`.experiment_list`: the filtered, sorted experiment page, its filter choices and sort keys
- :mod:`.catalog`: projects, datasets, models, endpoints and jobs with their usage
- :mod:`.lineage`: the graph around a dataset
- :mod:`.mlflow_runs`: a page of runs as MLflow shows them (rows, tags, final metrics, datasets), batched
- :mod:`.metric_curves`: metric values by step (charts, backfill comparisons)
- :mod:`.runs`: which Airflow runs already have an experiment
- :mod:`.status`: the experiments a task instance or DAG run decides

Every function takes the TrackingStore first and uses only its public API; the DAG visibility of every
read is :mod:`airflow_mltrack.store.visibility`. No Airflow imports.
"""
