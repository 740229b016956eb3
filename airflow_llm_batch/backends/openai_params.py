"""The output-token limit under the name each OpenAI endpoint and model accepts.

Users write ``max_tokens`` (the name most providers use). Chat Completions deprecated it for
``max_completion_tokens``, which the reasoning models (o1, o3, o4-mini...) and the gpt-5 family
require: they refuse ``max_tokens`` ("Unsupported parameter ... Use 'max_completion_tokens'"). The
Responses API names it ``max_output_tokens``. A name the user wrote explicitly is never overridden.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_llm_batch.pipeline.types import Endpoint

#: chat models that refuse ``max_tokens`` (fine-tuned ``ft:o4-mini:...`` ones too)
_NEEDS_COMPLETION_TOKENS = re.compile(r"^(ft:)?(o\d|gpt-5)")


def token_limit_name(endpoint: Endpoint, model: str) -> str | None:
    """The name ``max_tokens`` must take for ``model`` on ``endpoint``; None to leave it as written."""
    if endpoint == Endpoint.RESPONSES:
        return "max_output_tokens"
    if endpoint == Endpoint.CHAT and _NEEDS_COMPLETION_TOKENS.match(model.lower()):
        return "max_completion_tokens"
    return None


def body_params(endpoint: Endpoint, model: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with ``max_tokens`` renamed where the endpoint or model requires it.

    Example: ``body_params(Endpoint.CHAT, "o4-mini", {"max_tokens": 50}) == {"max_completion_tokens": 50}``
    """
    result = dict(params)
    name = token_limit_name(endpoint, model)
    if name is None or "max_tokens" not in result:
        return result
    limit = result.pop("max_tokens")
    result.setdefault(name, limit)
    return result
