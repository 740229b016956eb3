"""Names ``request_params`` may not set: the operator builds them from its own parameters.

``{"model": "other-model"}`` in request_params would send another model while the cost estimate,
the budget stop and the request cache all use ``model=`` (a budget could be bypassed), and
``custom_id`` would be injected into the request body. Each provider's body fields that carry the
model, the prompt, the system prompt or the row's id are reserved the same way.

Decisions (per provider and endpoint; name -> the operator parameter to use instead):

* every provider: ``model`` (``model=``), ``custom_id`` (the row id comes from ``key=``);
* OpenAI / Azure OpenAI chat completions: ``messages`` (``prompt=`` / ``system_prompt=``);
  responses: ``input``, ``instructions``; embeddings: ``input``;
* Anthropic: ``messages``, ``system``;
* Gemini and Vertex: ``contents``, ``system_instruction`` / ``systemInstruction``, ``key``, ``request``
  (their other params are also checked against GenerateContentConfig by the backends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.types import Endpoint

PROMPT = "prompt="
SYSTEM = "system_prompt="

COMMON: dict[str, str] = {"model": "model=", "custom_id": "key= (each row's id)"}

_OPENAI: dict[Endpoint, dict[str, str]] = {
    Endpoint.CHAT: {"messages": f"{PROMPT} and {SYSTEM}"},
    Endpoint.RESPONSES: {"input": PROMPT, "instructions": SYSTEM},
    Endpoint.EMBEDDINGS: {"input": PROMPT},
}
_GOOGLE: dict[str, str] = {"contents": PROMPT, "system_instruction": SYSTEM, "systemInstruction": SYSTEM,
                           "key": "key= (each row's id)", "request": f"{PROMPT} and request_params fields"}

#: provider -> endpoint -> reserved name -> what to use instead
RESERVED: dict[str, dict[Endpoint, dict[str, str]]] = {
    "openai": _OPENAI,
    "azure_openai": _OPENAI,
    "openai_compatible": _OPENAI,
    "anthropic": {endpoint: {"messages": PROMPT, "system": SYSTEM} for endpoint in Endpoint},
    "gemini": {endpoint: _GOOGLE for endpoint in Endpoint},
    "vertex": {endpoint: _GOOGLE for endpoint in Endpoint},
}


def reserved_names(provider: str, endpoint: Endpoint) -> dict[str, str]:
    """Reserved name -> what to use instead, for ``provider`` and ``endpoint``."""
    return {**COMMON, **RESERVED.get(provider, {}).get(endpoint, {})}


def check_request_params(provider: str, endpoint: Endpoint, params: Mapping[str, Any]) -> None:
    """InvalidInputError when ``params`` sets a name the operator sets itself.

    Example: ``check_request_params("openai", Endpoint.CHAT, {"model": "gpt-4o"})`` raises.
    """
    reserved = reserved_names(provider, endpoint)
    taken = sorted(name for name in params if name in reserved)
    if taken:
        hints = "; ".join(f"{name!r} -> use {reserved[name]}" for name in taken)
        raise InvalidInputError(f"request_params must not set {taken}: the operator sets them for {provider} "
                                f"{endpoint.value} requests, and the cost estimate, budget and cache follow "
                                f"the operator's values ({hints})")
