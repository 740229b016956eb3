"""Airflow connections -> configured SDK clients and backends, one hook per provider."""

from __future__ import annotations

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.hooks.base import LLMBatchHook

#: provider name -> "module:Class" of its hook (imported only when used, so optional SDKs stay optional)
PROVIDER_HOOKS: dict[str, str] = {
    "openai": "airflow_llm_batch.hooks.openai:OpenAIBatchHook",
    "azure_openai": "airflow_llm_batch.hooks.azure_openai:AzureOpenAIBatchHook",
    "openai_compatible": "airflow_llm_batch.hooks.openai_compatible:OpenAICompatibleHook",
    "anthropic": "airflow_llm_batch.hooks.anthropic:AnthropicBatchHook",
    "gemini": "airflow_llm_batch.hooks.gemini:GeminiBatchHook",
    "vertex": "airflow_llm_batch.hooks.vertex:VertexBatchHook",
}


#: provider name -> the pip extra that installs its SDK
EXTRAS: dict[str, str] = {"anthropic": "anthropic", "gemini": "gemini", "vertex": "google"}


def hook_class(provider: str) -> type[LLMBatchHook]:
    """The hook class serving ``provider``; a clear error naming the known ones otherwise."""
    import importlib

    if provider not in PROVIDER_HOOKS:
        raise BadConnectionError(f"unknown provider {provider!r}; known: {sorted(PROVIDER_HOOKS)}")
    module, _, name = PROVIDER_HOOKS[provider].partition(":")
    try:
        cls: type[LLMBatchHook] = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(
            f"provider {provider!r} needs an optional dependency: pip install "
            f"'airflow-llm-batch[{EXTRAS.get(provider, provider)}]' ({exc})"
        ) from exc
    return cls


__all__ = ["PROVIDER_HOOKS", "LLMBatchHook", "hook_class"]
