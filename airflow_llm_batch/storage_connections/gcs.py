"""``gs://conn_id@bucket/...`` without apache-airflow-providers-google: gcsfs options from the official
``google_cloud_platform`` connection.

The credentials come from google/credentials.py (``keyfile_dict``, ``key_path``, ``credential_config_file``,
``scope``, ``impersonation_chain``, ``project``; ``is_anonymous`` -> ``token="anon"``; the fields only the
provider can read are refused by name there). The official filesystem's own ``gcs.*`` extras are passed
on as it passes them (``gcs.endpoint``, ``gcs.requester-pays``...), and this package's ``storage_endpoint``
(also read by the gs:// sink) is the endpoint. Other extras of the connection are
left to the Vertex / BigQuery code that reads the same connection. ``STORAGE_EMULATOR_HOST`` still
points gcsfs at an emulator.

Example: ``gcs_options("my_gcp", "google_cloud_platform", {"is_anonymous": True})`` ->
``{"token": "anon", "project": None}``
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.google.credentials import connection_credentials, connection_field
from airflow_llm_batch.google.settings import endpoint_url
from airflow_llm_batch.storage_connections.fields import expect_type, flag

CONN_TYPES = ("google_cloud_platform", "gcpbigquery")
#: the official filesystem's extras -> gcsfs options (as providers/google/cloud/fs/gcs.py maps them)
GCS_OPTIONS = {"gcs.access": "access", "gcs.consistency": "consistency", "gcs.cache-timeout": "cache_timeout",
               "gcs.requester-pays": "requester_pays", "gcs.session-kwargs": "session_kwargs",
               "gcs.endpoint": "endpoint_url", "gcs.default-bucket-location": "default_location",
               "gcs.version-aware": "version_aware"}
_FLAGS = ("requester_pays", "version_aware")


def gcs_options(conn_id: str, conn_type: str | None, extras: Mapping[str, Any]) -> dict[str, Any]:
    """gcsfs keyword arguments for connection ``conn_id``."""
    expect_type(conn_id, "gs", conn_type, CONN_TYPES)
    if flag(connection_field(extras, "is_anonymous")):
        options: dict[str, Any] = {"token": "anon", "project": connection_field(extras, "project")}
    else:
        credentials, project = connection_credentials(conn_id, extras)
        options = {"token": credentials, "project": project}
    endpoint = connection_field(extras, "storage_endpoint")  # this package's field, read by the gs:// sink too
    if endpoint:
        options["endpoint_url"] = endpoint_url(endpoint)
    for name, option in GCS_OPTIONS.items():
        value = extras.get(name)
        if value is not None and value != "":
            options[option] = flag(value) if option in _FLAGS else value
    return options


def gcs_filesystem(options: dict[str, Any]) -> Any:
    """gcsfs's core class for an emulator or an explicit endpoint (its default class first asks the
    storage-control gRPC API for each bucket's layout, which an emulator does not serve), else its default."""
    if os.environ.get("STORAGE_EMULATOR_HOST") or options.get("endpoint_url"):
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(**options)
    import fsspec

    return fsspec.filesystem("gs", **options)
