"""Any server speaking the OpenAI API (vLLM, Ollama, TGI, LM Studio, DeepSeek, Together, Groq...).

It is the OpenAI backend (same request lines, same real-time send, same batch calls where the server
has them) with one difference: whether the server has a batch API is not assumed. The connection
extra ``batch_api`` (true/false) says so, else one cheap probe finds out and is cached on the instance
(:mod:`airflow_llm_batch.backends.batch_api_probe`). A batch submit on a server without batch routes
fails before anything is uploaded (not retried), with an error saying to use ``mode='realtime'`` or ``'auto'``.

Example: ``OpenAICompatibleBackend(AsyncOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="no-key"))``
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from openai import AsyncOpenAI

from airflow_llm_batch.backends.batch_api_probe import no_batch_api_message, probe_batch_routes
from airflow_llm_batch.backends.openai import CREATE_RETRY_DELAYS, OpenAIBatchBackend
from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.backend import OpenChunk

BATCH_API_EXTRA = "batch_api"


class OpenAICompatibleBackend(OpenAIBatchBackend):
    """The OpenAI backend for a server whose batch API is found out, not assumed.

    ``batch_api``: the connection's ``batch_api`` extra (None: probe once, on first need).
    ``has_batch_api`` stays True as the class's capability ("speaks the Batch API where the server has
    it"); ask :func:`~airflow_llm_batch.backends.batch_api_probe.batch_api_available` for the server's.
    """

    name: ClassVar[str] = "openai_compatible"

    def __init__(self, client: AsyncOpenAI, *, batch_api: bool | None = None,
                 create_retry_delays: tuple[float, ...] = CREATE_RETRY_DELAYS,
                 batch_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(client, create_retry_delays=create_retry_delays, batch_options=batch_options)
        self._batch_api = batch_api
        self._why = f'connection extra "{BATCH_API_EXTRA}": {str(batch_api).lower()}'
        self.probes = 0  # probe requests made by this instance (0 when the extra decided)

    async def check_batch_api(self) -> bool:
        """The extra's answer, else the probe's (made once per instance; never creates anything)."""
        if self._batch_api is None:
            self.probes += 1
            self._batch_api, self._why = await probe_batch_routes(self.client)
        return self._batch_api

    async def submit(self, open_chunk: OpenChunk, count: int, tags: dict[str, str]) -> str:
        if not await self.check_batch_api():
            raise InvalidInputError(no_batch_api_message(self.client.base_url, self._why))
        return await super().submit(open_chunk, count, tags)
