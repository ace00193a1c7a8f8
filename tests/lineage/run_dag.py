"""Run one DAG with ``dag.test()`` in this (fresh) process; the OpenLineage provider reads its settings
from the environment the test sets. Usage: ``python -m tests.lineage.run_dag <dag folder> <dag_id>``."""

from __future__ import annotations

import sys

from airflow.dag_processing.dagbag import DagBag


def main(folder: str, dag_id: str) -> None:
    bag = DagBag(dag_folder=folder)
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.dags[dag_id].test()
    print(f"DAG_RUN_STATE={dag_run.state}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
