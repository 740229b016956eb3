"""Run a DAG from tests/dags for real with dag.test() and read back what its tasks did."""

from __future__ import annotations

from typing import Any

from airflow.dag_processing.dagbag import DagBag
from airflow.utils.state import DagRunState, TaskInstanceState

_BAG: DagBag | None = None


def get_dag(dag_id: str) -> Any:
    global _BAG
    if _BAG is None:
        import os

        _BAG = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        assert not _BAG.import_errors, _BAG.import_errors
    return _BAG.dags[dag_id]


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    """Run the DAG once in-process (deferrable tasks run their trigger inline) and return the run."""
    return get_dag(dag_id).test(run_conf=conf or {})


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (session.query(XComModel)
               .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key).first())
        return None if row is None else XComModel.deserialize_value(row)


__all__ = ["DagRunState", "TaskInstanceState", "get_dag", "run_dag", "task_states", "xcom"]
