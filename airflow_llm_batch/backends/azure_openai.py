"""Azure OpenAI batch: the OpenAI Batch API on an Azure resource (global batch deployments).

Same files and batch objects as OpenAI; the differences are data: input lines and the batch
endpoint name the path without ``/v1`` (``/chat/completions``), the model is the *deployment* name,
and the client is ``AsyncAzureOpenAI`` (endpoint + api-version). The enqueued-token quota is per
deployment: set ``enqueued_token_budget`` accordingly.
"""

from __future__ import annotations

from typing import ClassVar

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.pipeline.types import Endpoint


class AzureOpenAIBatchBackend(OpenAIBatchBackend):
    """Example: ``AzureOpenAIBatchBackend(AsyncAzureOpenAI(azure_endpoint=..., api_key=..., api_version=...))``"""

    name: ClassVar[str] = "azure_openai"
    urls: ClassVar[dict[Endpoint, str]] = {
        Endpoint.CHAT: "/chat/completions",
        Endpoint.RESPONSES: "/responses",
        Endpoint.EMBEDDINGS: "/embeddings",
    }
