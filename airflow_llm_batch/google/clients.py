"""BigQuery and Cloud Storage clients built from :class:`GoogleSettings` (endpoint override included)."""

from __future__ import annotations

import threading
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.settings import GoogleSettings


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError as exc:
        raise InvalidInputError(
            f"{module} is not installed; install the google extra: pip install 'airflow-llm-batch[google]'"
        ) from exc


def bigquery_client(settings: GoogleSettings, project: str | None = None) -> Any:
    """A ``google.cloud.bigquery.Client`` billing jobs to ``project`` (or the settings' project).

    Example: ``bigquery_client(google_settings("google_cloud_default"), project="analytics")``
    """
    _require("google.cloud.bigquery")
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    credentials, cred_project = settings.credentials("bigquery")
    billing = project or settings.project or cred_project
    if not billing:
        raise InvalidInputError(f"no Google Cloud project for BigQuery ({settings.describe('bigquery')}): "
                                f"name it in the URI or set the connection extra 'project'.")
    options = ClientOptions(api_endpoint=settings.bigquery_endpoint) if settings.bigquery_endpoint else None
    return bigquery.Client(project=billing, credentials=credentials, client_options=options)


def storage_client(settings: GoogleSettings, project: str | None = None) -> Any:
    """A ``google.cloud.storage.Client``; the project only matters for creating buckets.

    Example: ``storage_client(google_settings()).bucket("my-bucket").blob("a.jsonl")``
    """
    _require("google.cloud.storage")
    from google.cloud import storage  # type: ignore[attr-defined]

    credentials, cred_project = settings.credentials("storage")
    options = {"api_endpoint": settings.storage_endpoint} if settings.storage_endpoint else None
    # an explicit None (not the default marker) means "no project": the client does not go looking
    return storage.Client(project=project or settings.project or cred_project or None,
                          credentials=credentials, client_options=options)


class GoogleClients:
    """Cloud Storage and BigQuery clients for one connection, built on first use (in a worker thread).

    Example: ``GoogleClients(google_settings("google_cloud_default"), project="my-project").gcs()``
    """

    def __init__(self, settings: GoogleSettings, project: str | None) -> None:
        self.settings = settings
        self.project = project
        self._lock = threading.Lock()
        self._gcs: Any = None
        self._bigquery: Any = None

    def gcs(self) -> Any:
        with self._lock:
            if self._gcs is None:
                self._gcs = storage_client(self.settings, self.project)
            return self._gcs

    def bigquery(self) -> Any:
        with self._lock:
            if self._bigquery is None:
                self._bigquery = bigquery_client(self.settings, self.project)
            return self._bigquery

    def close(self) -> None:
        with self._lock:
            for client in (self._gcs, self._bigquery):
                close = getattr(client, "close", None)
                if close is not None:
                    close()
            self._gcs = self._bigquery = None
