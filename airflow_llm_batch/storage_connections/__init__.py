"""Filesystems for ``gs://conn_id@...``, ``s3://conn_id@...`` and ``abfs://conn_id@...`` paths when the
official provider (google / amazon / microsoft-azure), whose filesystem would read the connection, is not
installed: the connection's fields are mapped onto the fsspec filesystem's options (gcs.py, s3.py,
azure.py) and the filesystem attached to Airflow's object storage for (scheme, conn_id), so
``ObjectStoragePath("s3://conn_id@bucket/key")`` resolves to it. One filesystem per (scheme, conn_id)
in the process. Secrets stay in the filesystem: never logged, never in an error.

Example: ``attach_connection("s3", "lake")`` before ``ObjectStoragePath("s3://lake@bucket/ws")``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

#: (scheme, conn_id) -> the filesystem attached for it
_ATTACHED: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()
#: each scheme's family (the aliases of one fsspec filesystem)
FAMILY = {"gs": "gcs", "gcs": "gcs", "s3": "s3", "s3a": "s3", "abfs": "azure", "abfss": "azure", "az": "azure"}


def attach_connection(scheme: str, conn_id: str) -> Any:
    """The filesystem of ``scheme`` for connection ``conn_id``, built once per process and attached as
    Airflow's store ``{scheme}-{conn_id}``. BadConnectionError when the connection cannot be honoured."""
    key = (scheme, conn_id)
    with _LOCK:
        if key in _ATTACHED:
            return _ATTACHED[key]
        filesystem = build_filesystem(scheme, conn_id)
        from airflow.sdk.io import attach

        store = attach(scheme, conn_id, fs=filesystem)
        if store.__dict__.get("fs") is not filesystem:  # a store cached earlier without a usable filesystem
            store.fs = filesystem
        _ATTACHED[key] = filesystem
        log.info("%s:// paths of connection %r use %s", scheme, conn_id, type(filesystem).__name__)
        return filesystem


def build_filesystem(scheme: str, conn_id: str) -> Any:
    """A new fsspec filesystem of ``scheme`` configured from connection ``conn_id``."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extras = conn.extra_dejson
    family = FAMILY[scheme]
    if family == "gcs":
        from airflow_llm_batch.storage_connections.gcs import gcs_filesystem, gcs_options

        return gcs_filesystem(gcs_options(conn_id, conn.conn_type, extras))
    import fsspec

    if family == "s3":
        from airflow_llm_batch.storage_connections.s3 import s3_options

        return fsspec.filesystem("s3", **s3_options(conn_id, conn.conn_type, conn.login, conn.password, extras))
    from airflow_llm_batch.storage_connections.azure import azure_options

    options = azure_options(conn_id, conn.conn_type, conn.host, conn.login, conn.password, extras)
    return fsspec.filesystem("abfs", **options)


def forget_connections() -> None:
    """Drop this module's filesystems (tests; a rotated key needs a new process otherwise)."""
    from airflow.sdk.io.store import _STORE_CACHE

    with _LOCK:
        for scheme, conn_id in _ATTACHED:
            _STORE_CACHE.pop(f"{scheme}-{conn_id}", None)
        _ATTACHED.clear()
