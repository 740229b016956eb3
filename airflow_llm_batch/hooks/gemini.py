"""Gemini Developer API connection -> ``genai.Client`` -> Gemini batch backend."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from airflow.sdk.definitions.connection import Connection
from google import genai
from google.genai import types

from airflow_llm_batch.backends.gemini import DEFAULT_INLINE_MAX_BYTES, GeminiBatchBackend
from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.google.credentials import OFFICIAL_FIELDS, PREFIX
from airflow_llm_batch.hooks.base import LLMBatchHook
from airflow_llm_batch.hooks.extras import mapping_extra, number_extra, refuse_unknown_extras

_VERSION_SUFFIX = re.compile(r"/(v\d+(?:alpha|beta)?\d*)$")
#: the extras this connection type reads; any other set extra is a BadConnectionError
ACCEPTED_EXTRAS = frozenset({"api_key", "api_version", "timeout", "headers", "inline_max_bytes"})
_VERTEX_HINT = ("; Google Cloud fields (project, key files...) belong on a google_cloud_platform connection "
                "used with provider='vertex': this one is the Gemini Developer API, authenticated by its API key")


class GeminiBatchHook(LLMBatchHook):
    """Connection type ``llm_batch_gemini``: the Gemini Developer API (an API key; not Vertex AI).

    password = API key; host = base URL (e.g. ``http://127.0.0.1:8787`` for the emulator; empty for
    generativelanguage.googleapis.com; a trailing ``/v1beta`` or ``/v1`` sets the API version).
    extra: ``api_version`` (``v1beta`` or ``v1``; default: google-genai's), ``timeout`` (seconds),
    ``headers`` (extra HTTP headers), ``inline_max_bytes`` (chunks whose create body is larger are
    uploaded as files; 0 always uploads). Any other extra (a Google Cloud field such as ``project`` or
    ``key_path`` included: Vertex AI takes a ``google_cloud_platform`` connection) is a
    BadConnectionError naming it, never ignored.

    The key is read from the connection each time a client is built (on the worker, and in the
    triggerer from ``conn_id``): it never travels in trigger kwargs or XCom.

    Example: ``GeminiBatchHook("gemini_default").get_backend()``
    """

    provider: ClassVar[str] = "gemini"
    conn_name_attr = "conn_id"
    default_conn_name = "gemini_default"
    conn_type = "llm_batch_gemini"
    hook_name = "Gemini (Developer API)"

    @staticmethod
    def client_kwargs(conn: Connection) -> dict[str, Any]:
        """One place that turns a connection into client arguments, so sync and async cannot drift."""
        extra = conn.extra_dejson
        google_fields = {name.removeprefix(PREFIX) for name in extra} & OFFICIAL_FIELDS
        refuse_unknown_extras(conn.conn_id, extra, ACCEPTED_EXTRAS, _VERTEX_HINT if google_fields else "")
        api_key = conn.password or extra.get("api_key")
        if not api_key:
            raise BadConnectionError(f"connection {conn.conn_id!r} has no API key: set its password")
        options: dict[str, Any] = {}
        api_version = extra.get("api_version")
        if conn.host:
            base_url = conn.host if "://" in conn.host else f"https://{conn.host}"
            base_url = base_url.rstrip("/")
            suffix = _VERSION_SUFFIX.search(base_url)
            if suffix:
                api_version = api_version or suffix.group(1)
                base_url = base_url[: suffix.start()]
            options["base_url"] = base_url
        if api_version:
            options["api_version"] = str(api_version)
        timeout = number_extra(conn.conn_id, "timeout", extra.get("timeout"), float)
        if timeout:
            options["timeout"] = int(timeout * 1000)  # google-genai takes milliseconds
        if extra.get("headers"):
            headers = mapping_extra(conn.conn_id, "headers", extra["headers"])
            options["headers"] = {name: str(value) for name, value in headers.items()}
        return {"api_key": api_key, "vertexai": False, "http_options": types.HttpOptions(**options)}

    def backend_from_connection(self, conn: Connection) -> GeminiBatchBackend:
        inline = number_extra(conn.conn_id, "inline_max_bytes", conn.extra_dejson.get("inline_max_bytes"), int)
        return GeminiBatchBackend.from_client_kwargs(
            self.client_kwargs(conn), inline_max_bytes=DEFAULT_INLINE_MAX_BYTES if inline is None else inline)

    def get_sync_client(self) -> genai.Client:
        return genai.Client(**self.client_kwargs(self.get_connection(self.conn_id)))

    def probe(self) -> str:
        client = self.get_sync_client()  # kept referenced: a collected client closes its HTTP session
        listed = client.batches.list(config=types.ListBatchJobsConfig(page_size=1))
        return f"authenticated: the Batch API answered ({len(listed.page)} batch listed)"
