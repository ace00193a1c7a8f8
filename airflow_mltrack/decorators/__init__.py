"""TaskFlow decorator ``@task.mltrack`` and the ``Tracker`` its function receives.

Import ``Tracker`` for type hints: ``from airflow_mltrack.decorators.tracker import Tracker``.
The decorator is reached as ``@task.mltrack`` (provider ``task-decorators``) or imported directly:
``from airflow_mltrack.decorators.mltrack_task import mltrack_task``.
"""
