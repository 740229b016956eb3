"""Google Cloud plumbing shared by the BigQuery and Cloud Storage sinks and sources.

Credentials and project come from a ``google_cloud_platform`` Airflow connection (through
apache-airflow-providers-google's ``GoogleBaseHook`` when it is installed) or Application Default
Credentials; endpoints can be overridden for emulators. See :mod:`.settings` for the rules.
Importing this package imports no google-cloud-* library; the clients are built on demand.

Example::

    from airflow_llm_batch.google import bigquery_client, google_settings

    client = bigquery_client(google_settings("google_cloud_default"), project="analytics")
"""

from __future__ import annotations

from airflow_llm_batch.google.clients import bigquery_client, storage_client
from airflow_llm_batch.google.settings import (
    BIGQUERY_EMULATOR_ENV,
    DEFAULT_CONN_ID,
    STORAGE_EMULATOR_ENV,
    GoogleSettings,
    google_settings,
)

__all__ = [
    "BIGQUERY_EMULATOR_ENV",
    "DEFAULT_CONN_ID",
    "STORAGE_EMULATOR_ENV",
    "GoogleSettings",
    "bigquery_client",
    "google_settings",
    "storage_client",
]
