"""A request line's prompt tokens as the provider counts them, through its free count-tokens endpoint
(``estimate="api"``; see :mod:`~airflow_llm_batch.pipeline.api_estimate`).

* Anthropic: ``POST /v1/messages/count_tokens`` (``client.messages.count_tokens``) with the line's
  ``model``, ``messages``, ``system``, ``tools`` and ``tool_choice`` -> ``input_tokens``.
* Gemini: ``models.countTokens`` (``client.aio.models.count_tokens``) -> ``total_tokens``. The SDK
  sends only ``contents`` on the Gemini API (it refuses a system instruction there), so the system
  instruction is counted as one more content: the same text, framed like a message.
"""

from __future__ import annotations

from typing import Any

from anthropic import AsyncAnthropic
from google import genai

#: the Messages parameters the count-tokens endpoint accepts (the others do not change the prompt)
ANTHROPIC_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking")


async def anthropic_count(client: AsyncAnthropic, request_line: dict[str, Any]) -> int:
    """Input tokens of an Anthropic batch line ``{"custom_id", "params"}``."""
    params = request_line["params"]
    counted = {name: params[name] for name in ANTHROPIC_COUNTED if name in params}
    return (await client.messages.count_tokens(**counted)).input_tokens


async def gemini_count(client: genai.Client, request_line: dict[str, Any]) -> int:
    """Prompt tokens of a Gemini batch line ``{"key", "request"}`` (the request names its model)."""
    request = request_line["request"]
    contents = list(request["contents"])
    system = request.get("systemInstruction") or request.get("system_instruction")
    if isinstance(system, dict) and system.get("parts"):
        contents.append({"role": "user", "parts": system["parts"]})
    model = str(request_line.get("model") or request.get("model"))
    counted = await client.aio.models.count_tokens(model=model, contents=contents)
    if counted.total_tokens is None:
        raise ValueError("countTokens answered without totalTokens")
    return counted.total_tokens
