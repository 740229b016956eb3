"""Where Google calls go and with which identity: an Airflow connection, emulator settings, or ADC.

Resolution, for BigQuery and Cloud Storage alike:

* **Endpoint**: the connection extra ``bigquery_endpoint`` / ``storage_endpoint``, else the
  environment variable ``BIGQUERY_EMULATOR_HOST`` / ``STORAGE_EMULATOR_HOST`` (``host:port`` or a
  full URL), else Google's public endpoint.
* **Credentials**: an endpoint on plain ``http://`` (an emulator; real Google endpoints are https)
  always gets ``AnonymousCredentials``, so no token is ever sent in clear text. Otherwise, when
  apache-airflow-providers-google is installed and the connection exists, its ``GoogleBaseHook``
  supplies credentials and project (key files, impersonation... as configured there); without it,
  this package reads the same connection fields (google/credentials.py); no connection:
  Application Default Credentials.
* **Project**: the URI's own project where one is given, else the connection extra ``project``,
  else the credentials' project, else ``GOOGLE_CLOUD_PROJECT``.

Nothing here imports google-cloud-* or the Google provider before it is needed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.credentials import connection_credentials, connection_field

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "google_cloud_default"
BIGQUERY_EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@dataclass(frozen=True)
class GoogleSettings:
    """Endpoints, project and the way to get credentials for one Airflow connection (or none).

    Example::

        settings = google_settings("google_cloud_default")
        client = bigquery_client(settings, project="my-project")
    """

    conn_id: str | None
    project: str | None = None
    bigquery_endpoint: str | None = None
    storage_endpoint: str | None = None
    extras: dict[str, Any] = field(default_factory=dict, repr=False)
    has_connection: bool = False

    def anonymous(self, service: str) -> bool:
        """Whether calls to ``service`` ("bigquery" or "storage") go out without credentials."""
        endpoint = self.endpoint(service)
        return bool(endpoint and endpoint.startswith("http://"))

    def endpoint(self, service: str) -> str | None:
        return self.bigquery_endpoint if service == "bigquery" else self.storage_endpoint

    def credentials(self, service: str) -> tuple[Any, str | None]:
        """(credentials, their project) for ``service``; anonymous for plain-http emulators."""
        if self.anonymous(service):
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials(), None  # type: ignore[no-untyped-call]
        hook_class = _google_base_hook()
        if hook_class is not None and self.has_connection:
            creds, project = hook_class(gcp_conn_id=self.conn_id).get_credentials_and_project_id()
            return creds, project
        if self.has_connection:
            return connection_credentials(str(self.conn_id), self.extras)
        import google.auth

        creds, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        return creds, project

    def describe(self, service: str) -> str:
        """A log-safe line: connection, project and endpoint, never credentials."""
        return (f"conn={self.conn_id or '-'} project={self.project or '-'} "
                f"endpoint={self.endpoint(service) or 'default'}{' (anonymous)' if self.anonymous(service) else ''}")


def google_settings(conn_id: str | None = None) -> GoogleSettings:
    """Settings for ``conn_id`` (default ``google_cloud_default``, which may be absent)."""
    conn = _connection(conn_id)
    extras: dict[str, Any] = dict(conn.extra_dejson) if conn is not None else {}

    def extra(name: str) -> Any:
        return connection_field(extras, name)

    return GoogleSettings(
        conn_id=conn_id or DEFAULT_CONN_ID,
        project=extra("project") or extra("project_id") or None,
        bigquery_endpoint=endpoint_url(extra("bigquery_endpoint") or os.environ.get(BIGQUERY_EMULATOR_ENV)),
        storage_endpoint=endpoint_url(extra("storage_endpoint") or os.environ.get(STORAGE_EMULATOR_ENV)),
        extras=extras,
        has_connection=conn is not None,
    )


def endpoint_url(value: Any) -> str | None:
    """``host:port`` or a URL -> URL without a trailing slash (emulator variables are often bare)."""
    if not value:
        return None
    text = str(value).strip().rstrip("/")
    return text if "://" in text else f"http://{text}"


def _connection(conn_id: str | None) -> Any:
    """The Airflow connection, or None when the default one is simply not defined."""
    from airflow.sdk import BaseHook

    name = conn_id or DEFAULT_CONN_ID
    try:
        return BaseHook.get_connection(name)
    except Exception as exc:  # the SDK and core raise different AirflowNotFoundException classes
        if type(exc).__name__ != "AirflowNotFoundException":
            raise
        if conn_id and conn_id != DEFAULT_CONN_ID:
            raise InvalidInputError(f"Airflow connection {conn_id!r} does not exist; nothing was submitted.") from exc
        log.debug("No %s connection: using Application Default Credentials", name)
        return None


def _google_base_hook() -> Any:
    """GoogleBaseHook when apache-airflow-providers-google is installed, else None (optional extra)."""
    try:
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    except ImportError:
        return None
    return GoogleBaseHook
