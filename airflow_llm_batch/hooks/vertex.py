"""A ``google_cloud_platform`` connection -> google-genai client (Vertex AI) + GCS/BigQuery clients ->
Vertex batch prediction backend.

The core install does not need apache-airflow-providers-google: when it is installed, its
``GoogleBaseHook`` supplies credentials and project (key files, impersonation... as configured on
the connection); otherwise this package reads the same connection fields (``key_path``,
``keyfile_dict``, ``credential_config_file``, ``scope``, ``impersonation_chain``, ``is_anonymous``:
google/credentials.py) and refuses, naming the field, the ones only that provider can honour. An
endpoint on plain ``http://`` (an emulator) never gets real credentials. Credentials are built in
the process that polls or submits, from the connection id: they never travel in trigger kwargs or XCom.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from airflow.sdk.definitions.connection import Connection

from airflow_llm_batch.backends.vertex import VertexBatchBackend
from airflow_llm_batch.backends.vertex_staging import GoogleClients, VertexStaging
from airflow_llm_batch.exceptions import BadConnectionError, InvalidInputError
from airflow_llm_batch.google.credentials import connection_field
from airflow_llm_batch.google.settings import BIGQUERY_EMULATOR_ENV, STORAGE_EMULATOR_ENV, GoogleSettings
from airflow_llm_batch.google.settings import endpoint_url as _url
from airflow_llm_batch.hooks.base import LLMBatchHook
from airflow_llm_batch.hooks.extras import number_extra

DEFAULT_LOCATION = "us-central1"
DEFAULT_API_VERSION = "v1beta1"


@dataclass(frozen=True)
class VertexOptions:
    """What the connection says about Vertex AI, Cloud Storage and BigQuery (no secrets).

    Extras (plain names, or with the Google provider's ``extra__google_cloud_platform__`` prefix):
    ``project``, ``vertex_location`` (or ``location``; default ``us-central1``),
    ``vertex_staging_uri`` (``gs://bucket/prefix`` or ``bq://project.dataset``: where chunks are
    staged; required), ``vertex_output_uri`` (``gs://...`` or ``bq://project.dataset``; default
    ``{staging}/output`` on GCS, the staging dataset on BigQuery), ``vertex_endpoint`` (base URL,
    e.g. the emulator's), ``vertex_api_version`` (``v1beta1`` or ``v1``), ``vertex_timeout``
    (seconds per HTTP call), ``storage_endpoint`` and ``bigquery_endpoint`` (emulators; else the
    ``STORAGE_EMULATOR_HOST`` / ``BIGQUERY_EMULATOR_HOST`` variables). Credentials: the Google
    provider's fields, see :mod:`airflow_llm_batch.google.credentials`.

    Example: ``VertexOptions.from_connection(conn).staging_uri == "gs://my-bucket/llm-batch"``
    """

    conn_id: str
    project: str | None
    location: str
    staging_uri: str | None
    output_uri: str | None
    vertex_endpoint: str | None
    api_version: str
    timeout_seconds: float
    google: GoogleSettings

    @classmethod
    def from_connection(cls, conn: Connection) -> VertexOptions:
        extras: dict[str, Any] = dict(conn.extra_dejson)

        def extra(*names: str) -> Any:
            return next((value for value in map(partial(connection_field, extras), names) if value), None)

        project = extra("project", "project_id")
        google = GoogleSettings(
            conn_id=conn.conn_id, project=project,
            bigquery_endpoint=_url(extra("bigquery_endpoint") or os.environ.get(BIGQUERY_EMULATOR_ENV)),
            storage_endpoint=_url(extra("storage_endpoint") or os.environ.get(STORAGE_EMULATOR_ENV)),
            extras=extras, has_connection=True,
        )
        return cls(conn_id=conn.conn_id, project=project, location=str(extra("vertex_location", "location")
                                                                        or DEFAULT_LOCATION),
                   staging_uri=extra("vertex_staging_uri"), output_uri=extra("vertex_output_uri"),
                   vertex_endpoint=_url(extra("vertex_endpoint")),
                   api_version=str(extra("vertex_api_version") or DEFAULT_API_VERSION),
                   timeout_seconds=number_extra(conn.conn_id, "vertex_timeout", extra("vertex_timeout"), float)
                   or 120.0, google=google)

    @property
    def emulated(self) -> bool:
        """A plain-http Vertex endpoint: an emulator, which gets a placeholder token, never credentials."""
        return bool(self.vertex_endpoint and self.vertex_endpoint.startswith("http://"))

    def credentials(self) -> tuple[Any, str | None]:
        """(credentials, their project) for Vertex AI: the Google provider's hook, else ADC."""
        if self.emulated:
            from google.oauth2.credentials import Credentials

            return Credentials(token="emulator"), None  # type: ignore[no-untyped-call]
        # the storage/BigQuery emulator endpoints must not make the Vertex credentials anonymous
        real = dataclasses.replace(self.google, bigquery_endpoint=None, storage_endpoint=None)
        creds, project = real.credentials("vertex")
        return creds, project


class VertexBatchHook(LLMBatchHook):
    """Connection type ``google_cloud_platform`` (the Google provider's), read for Vertex AI batch prediction.

    See :class:`VertexOptions` for the extras. Example connection for the bundled emulators::

        {"conn_type": "google_cloud_platform", "extra": {
            "project": "test-project", "vertex_location": "us-central1",
            "vertex_endpoint": "http://127.0.0.1:8787", "storage_endpoint": "http://127.0.0.1:9023",
            "vertex_staging_uri": "gs://llm-batch/staging", "vertex_output_uri": "gs://llm-batch/output"}}

    Example: ``VertexBatchHook("google_cloud_default").get_backend()``
    """

    provider: ClassVar[str] = "vertex"
    conn_name_attr = "conn_id"
    default_conn_name = "google_cloud_default"
    conn_type = "google_cloud_platform"
    hook_name = "Google Cloud (Vertex AI batch prediction)"

    @staticmethod
    def client_kwargs(options: VertexOptions) -> dict[str, Any]:
        """Arguments of ``genai.Client``: one place, so every client of a connection is alike."""
        from google.genai import types

        credentials, cred_project = options.credentials()
        project = options.project or cred_project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise BadConnectionError(f"connection {options.conn_id!r} names no Google Cloud project: "
                                     f"set the extra 'project'")
        http_options = types.HttpOptions(
            base_url=options.vertex_endpoint, api_version=options.api_version,
            timeout=int(options.timeout_seconds * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),  # the backend decides what may be retried
        )
        return {"vertexai": True, "project": project, "location": options.location, "credentials": credentials,
                "http_options": http_options}

    def backend_from_connection(self, conn: Connection) -> VertexBatchBackend:
        from google.genai import Client

        options = VertexOptions.from_connection(conn)
        kwargs = self.client_kwargs(options)
        try:
            staging = VertexStaging.parse(options.staging_uri, options.output_uri, kwargs["project"])
        except InvalidInputError as exc:
            raise BadConnectionError(f"connection {options.conn_id!r}: {exc}") from exc
        return VertexBatchBackend(Client(**kwargs), staging=staging,
                                  clients=GoogleClients(options.google, kwargs["project"]))

    def probe(self) -> str:
        from google.genai import Client, types

        options = VertexOptions.from_connection(self.get_connection(self.conn_id))
        client = Client(**self.client_kwargs(options))
        listed = client.batches.list(config=types.ListBatchJobsConfig(page_size=1))
        return (f"authenticated: Vertex AI batch prediction answered in {options.location} "
                f"({len(listed.page)} job listed)")
