"""Extra links on the task: the run report (``report.html``) and the task's batch in its provider's
console.

The landing pushes the report's URI under the link's XCom key (:meth:`RunReportLink.persist`); the
API server reads it back per task instance. A ``file://`` report opens only where the browser sees that
file system: put the workspace on object storage served over HTTP(S) for a link everyone can open.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

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


#: each provider's console page of one batch ({id}), and of its batch list when a task made several;
#: Gemini (AI Studio) has no per-batch page, and Azure's is per resource: both link their list
CONSOLE_PAGES: dict[str, tuple[str, str]] = {
    "openai": ("https://platform.openai.com/batches/{id}", "https://platform.openai.com/batches"),
    "anthropic": ("https://console.anthropic.com/workspaces/default/batches/{id}",
                  "https://console.anthropic.com/workspaces/default/batches"),
    "gemini": ("https://aistudio.google.com/batches", "https://aistudio.google.com/batches"),
}
#: the provider's own API hosts: a connection whose host is another one (the bundled emulator, a proxy)
#: gets no console link, since that provider's console does not know its batches
OFFICIAL_HOSTS: dict[str, tuple[str, ...]] = {
    "openai": ("api.openai.com",), "anthropic": ("api.anthropic.com",),
    "gemini": ("generativelanguage.googleapis.com",), "vertex": ("aiplatform.googleapis.com",),
}
_VERTEX_JOB = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/batchPredictionJobs/(?P<id>[^/]+)$")
_VERTEX_PAGE = "https://console.cloud.google.com/vertex-ai/locations/{region}/batch-predictions/{id}?project={project}"
_VERTEX_LIST = "https://console.cloud.google.com/vertex-ai/batch-predictions?project={project}"


def console_url(provider: str, batch_ids: list[str]) -> str:
    """The console page of the task's batch (its provider's batch list when there are several); "" when
    the provider has none (Azure: the batch lives in a customer resource the link cannot name).

    Example: ``console_url("openai", ["batch_abc"]) == "https://platform.openai.com/batches/batch_abc"``
    """
    if not batch_ids:
        return ""
    if provider == "vertex":
        jobs = [m for m in map(_VERTEX_JOB.match, batch_ids) if m]
        if not jobs:
            return ""
        page = _VERTEX_PAGE if len(batch_ids) == 1 else _VERTEX_LIST
        return page.format(**jobs[0].groupdict())
    pages = CONSOLE_PAGES.get(provider)
    if pages is None:
        return ""
    return pages[0].format(id=quote(batch_ids[0], safe="")) if len(batch_ids) == 1 else pages[1]


#: the batch's own API URL on a loopback host (the bundled emulator), relative to the connection's base URL
EMULATOR_PAGES: dict[str, str] = {"openai": "{base}/batches/{id}", "anthropic": "{base}/v1/messages/batches/{id}"}
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def batch_link(provider: str, conn_id: str | None, batch_ids: list[str]) -> str:
    """The link for a task's batches through its connection: the provider's console page when the
    connection talks to the provider; the batch's own URL on the bundled emulator (a loopback host);
    nothing for any other host (a proxy: the provider's console does not know where it sends)."""
    if not batch_ids or provider not in OFFICIAL_HOSTS:
        return ""
    base = _base_url(provider, conn_id)
    if base is None:
        return console_url(provider, batch_ids)
    host = urlsplit(base).hostname or ""
    if host.endswith(OFFICIAL_HOSTS[provider]):
        return console_url(provider, batch_ids)
    page = EMULATOR_PAGES.get(provider)
    if host in _LOOPBACK and page is not None and len(batch_ids) == 1:
        return page.format(base=base.rstrip("/"), id=quote(batch_ids[0], safe=""))
    return ""


def _base_url(provider: str, conn_id: str | None) -> str | None:
    """The API base URL the connection points at (None: the SDK's default, i.e. the provider)."""
    from airflow_llm_batch.hooks import hook_class

    hook = hook_class(provider)(conn_id)
    conn = hook.get_connection(hook.conn_id)
    extra = conn.extra_dejson or {}
    client_kwargs = extra.get("openai_client_kwargs") or {}
    base = conn.host or client_kwargs.get("base_url") or extra.get("base_url") or extra.get("vertex_endpoint")
    if not base:
        return None
    return str(base) if "://" in str(base) else f"https://{base}"


class BatchConsoleLink(BaseOperatorLink):
    """"Batch in console": the task's batch in its provider's console (OpenAI batches page, Anthropic
    console, Vertex batch prediction job, AI Studio's batch list), from the ``batch_ids`` XCom; on the
    bundled emulator the batch's own URL there; nothing through any other host (see :func:`batch_link`)."""

    name = "Batch in console"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        ids = XCom.get_value(key="batch_ids", ti_key=ti_key)
        provider = str(getattr(operator, "provider", "") or "")
        return batch_link(provider, getattr(operator, "conn_id", None), [str(i) for i in ids or []])
