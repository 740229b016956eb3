"""An ``openai`` connection to any OpenAI-compatible server -> the ``openai_compatible`` backend.

The connection is the official OpenAI provider's type, read as :class:`~.openai.OpenAIBatchHook` reads
it (host = base URL, password = key, ``extra.openai_client_kwargs``...), with two differences: the
host is required (there is no default server) and the key is optional (vLLM, Ollama, TGI and LM Studio
need none; a placeholder the SDK accepts is sent instead, never the process's ``OPENAI_API_KEY``).
Extra ``batch_api`` (true/false) says whether the server has a batch API; unset, it is probed once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import openai
from airflow.sdk.definitions.connection import Connection
from openai import AsyncOpenAI

from airflow_llm_batch.backends.batch_api_probe import NO_BATCH_API_STATUSES, PROBE_PATH
from airflow_llm_batch.backends.openai_compatible import BATCH_API_EXTRA, OpenAICompatibleBackend
from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.extras import batch_options_extra
from airflow_llm_batch.hooks.openai import OpenAIBatchHook

#: what the SDK is given when the connection has no key (it refuses an empty one); not a secret
NO_KEY = "no-key"
_WORDS = {"true": True, "false": False}


class OpenAICompatibleHook(OpenAIBatchHook):
    """Provider ``openai_compatible`` on connection type ``openai`` (not registered by this package).

    Example connection: host ``http://127.0.0.1:8000/v1`` (vLLM) or ``http://127.0.0.1:11434/v1``
    (Ollama), no password, extra ``{"batch_api": false}``.
    Example: ``OpenAICompatibleHook("vllm").get_backend()``
    """

    provider: ClassVar[str] = "openai_compatible"
    default_conn_name = "openai_compatible_default"
    hook_name = "OpenAI-compatible server"

    @staticmethod
    def client_kwargs(conn: Connection) -> dict[str, Any]:
        """The OpenAI hook's client arguments; a connection without a key gets the placeholder key."""
        if not conn.host and not _client_kwargs(conn).get("base_url"):
            raise BadConnectionError(f"connection {conn.conn_id!r}: set its host to the server's base URL, e.g. "
                                     f"http://127.0.0.1:8000/v1 (vLLM) or http://127.0.0.1:11434/v1 (Ollama)")
        if not (conn.password or conn.extra_dejson.get("api_key") or _client_kwargs(conn).get("api_key")):
            conn = Connection(conn_id=conn.conn_id, conn_type=conn.conn_type, host=conn.host, login=conn.login,
                              password=NO_KEY, schema=conn.schema, port=conn.port, extra=conn.extra)
        return OpenAIBatchHook.client_kwargs(conn)

    def backend_from_connection(self, conn: Connection) -> OpenAICompatibleBackend:
        return OpenAICompatibleBackend(AsyncOpenAI(**self.client_kwargs(conn), http_client=self.http_client),
                                       batch_api=batch_api_extra(conn), batch_options=batch_options_extra(conn))

    def probe(self) -> str:
        """Test button: the batch-API probe itself (a list call), or the extra's word when it is set."""
        conn = self.get_connection(self.conn_id)
        said = batch_api_extra(conn)
        if said is not None:
            return f"batch API: {'yes' if said else 'no'} (connection extra {BATCH_API_EXTRA!r}; not probed)"
        client = self.get_sync_client()
        try:
            client.with_options(max_retries=0).get(PROBE_PATH, cast_to=object, options={"params": {"limit": 1}})
        except openai.APIStatusError as exc:
            if exc.status_code not in NO_BATCH_API_STATUSES:
                raise  # the Test button names a refused key itself
            return f"reached {client.base_url}; no batch API ({exc.status_code} on {PROBE_PATH}): real-time only"
        return f"authenticated: {client.base_url} listed batches (it has a batch API)"


def batch_api_extra(conn: Connection) -> bool | None:
    """The connection's ``batch_api`` extra as a bool (None when unset); BadConnectionError otherwise."""
    value = conn.extra_dejson.get(BATCH_API_EXTRA)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        return _WORDS[value.strip().lower()]
    raise BadConnectionError(f"connection {conn.conn_id!r}: extra {BATCH_API_EXTRA!r} must be true or false, not "
                             f"a {type(value).__name__}; fix the connection, then clear the task")


def _client_kwargs(conn: Connection) -> Mapping[str, Any]:
    value = conn.extra_dejson.get("openai_client_kwargs")
    return value if isinstance(value, Mapping) else {}
