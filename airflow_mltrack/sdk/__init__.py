"""What the operators and ``@task.mltrack`` share on top of the Airflow Task SDK: argument handling
(:mod:`~airflow_mltrack.sdk.arguments`) and the "Experiment" extra link (:mod:`~airflow_mltrack.sdk.links`).

It sits below ``operators/`` and ``decorators/`` (both import it, neither imports the other) and above
``hooks/`` and ``store/`` (docs/architecture.md).
"""
