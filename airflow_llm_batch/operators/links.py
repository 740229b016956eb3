"""The run report as an extra link on the task: a button in the task's UI that opens ``report.html``.

The landing pushes the report's URI under the link's XCom key (:meth:`RunReportLink.persist`); the
API server reads it back per task instance. A ``file://`` report opens only where the browser sees that
file system: put the workspace on object storage served over HTTP(S) for a link everyone can open.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom


class RunReportLink(BaseOperatorLink):
    """"Run report": the HTML report written beside the results of the task run."""

    name = "Run report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return str(value) if value else ""

    @classmethod
    def persist(cls, context: Any, uri: str) -> None:
        context["ti"].xcom_push(key=cls().xcom_key, value=uri)
