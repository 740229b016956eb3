"""Results of the emulated Anthropic Messages API, built from the emulated model.

:func:`message_result` turns the ``params`` of one batch request into the ``result`` object of a
results line: ``{"type": "succeeded", "message": {...}}`` or ``{"type": "errored", ...}``.

Beyond :mod:`.model`'s rules:

* A forced tool (``tool_choice={"type": "tool", "name": N}``, or ``{"type": "any"}`` which picks
  the first tool) answers with one ``tool_use`` block whose ``input`` is derived from the tool's
  ``input_schema``; ``stop_reason`` is ``"tool_use"``. With ``[[emulator:truncate]]`` the block's
  input is ``{}`` and ``stop_reason`` is ``"max_tokens"``.
* ``output_config.format`` (or the older ``output_format``) of type ``json_schema`` answers with
  the schema-derived JSON as text.
* Prompt caching: the batch decides, per request, how many prompt tokens were written to or read
  from the cache (:class:`CacheUse`); they are reported in ``usage`` and taken out of
  ``input_tokens`` as the real API does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import model
from .schema_values import schema_answer


@dataclass(frozen=True)
class CacheUse:
    """Prompt tokens of one request written to (``creation``) or read from (``read``) the cache."""

    creation: int = 0
    read: int = 0


def system_blocks(system: Any) -> list[Mapping[str, Any]]:
    """The ``system`` param as a list of text blocks."""
    if isinstance(system, str):
        return [{"type": "text", "text": system}] if system else []
    if isinstance(system, list):
        return [block for block in system if isinstance(block, Mapping)]
    return []


def cached_prefix(params: Mapping[str, Any]) -> str | None:
    """Text of the system blocks up to the last one marked ``cache_control``, None without one."""
    blocks = system_blocks(params.get("system"))
    marked = [i for i, block in enumerate(blocks) if block.get("cache_control")]
    if not marked:
        return None
    return "\n".join(model.content_text([block]) for block in blocks[: marked[-1] + 1])


def input_token_count(params: Mapping[str, Any]) -> int:
    """Prompt tokens of a request: the system text counts as one message."""
    texts: list[str] = []
    system = system_blocks(params.get("system"))
    if system:
        texts.append(model.content_text(list(system)))
    messages = params.get("messages")
    if isinstance(messages, list):
        texts.extend(model.content_text(m.get("content")) for m in messages if isinstance(m, Mapping))
    return model.prompt_tokens(texts)


def _last_user_text(params: Mapping[str, Any]) -> str:
    messages = params.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return model.content_text(message.get("content"))
    return ""


def _forced_tool(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choice = params.get("tool_choice")
    tools = [t for t in params.get("tools") or [] if isinstance(t, Mapping) and "name" in t]
    if not isinstance(choice, Mapping) or not tools:
        return None
    if choice.get("type") == "tool":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    if choice.get("type") == "any":
        return tools[0]
    return None


def _output_schema(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    config = params.get("output_config")
    candidates = [config.get("format") if isinstance(config, Mapping) else None, params.get("output_format")]
    for fmt in candidates:
        schema = fmt.get("schema") if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" else None
        if isinstance(schema, Mapping):
            return schema
    return None


def errored_result(error_type: str, message: str) -> dict[str, Any]:
    """An ``errored`` result."""
    return {"type": "errored", "error": {"type": "error", "error": {"type": error_type, "message": message}}}


def message_result(params: Mapping[str, Any], *, seed: str, cache: CacheUse) -> dict[str, Any]:
    """The ``result`` of one batch request."""
    last_user = _last_user_text(params)
    markers = model.parse_markers(last_user)
    if markers.error_code:
        return errored_result(
            markers.error_code, f"Emulated failure '{markers.error_code}' requested by a prompt marker."
        )
    tool = _forced_tool(params)
    if tool is not None:
        content, output_tokens, stop_reason = _tool_answer(tool, last_user, seed, truncate=markers.truncate)
    else:
        content, output_tokens, stop_reason = _text_answer(params, last_user, truncate=markers.truncate)
    cached = cache.creation + cache.read
    message = {
        "id": "msg_" + model.short_id("msg", seed),
        "type": "message",
        "role": "assistant",
        "model": params.get("model"),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": max(0, input_token_count(params) - cached),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": cache.creation,
            "cache_read_input_tokens": cache.read,
            "cache_creation": {"ephemeral_5m_input_tokens": cache.creation, "ephemeral_1h_input_tokens": 0},
            "service_tier": "batch",
        },
    }
    return {"type": "succeeded", "message": message}


_Answer = tuple[list[dict[str, Any]], int, str]
"""(content blocks, output tokens, stop_reason) of a message."""


def _tool_answer(tool: Mapping[str, Any], last_user: str, seed: str, *, truncate: bool) -> _Answer:
    """One ``tool_use`` block whose input fits the tool's schema (``{}`` when truncated)."""
    schema = tool.get("input_schema")
    tool_input = {} if truncate else schema_answer(schema if isinstance(schema, Mapping) else {}, last_user)
    block = {"type": "tool_use", "id": "toolu_" + model.short_id("toolu", seed), "name": str(tool["name"]),
             "input": tool_input}
    return [block], model.count_tokens(model.dumps_compact(tool_input)), "max_tokens" if truncate else "tool_use"


def _text_answer(params: Mapping[str, Any], last_user: str, *, truncate: bool) -> _Answer:
    """One ``text`` block: the echo, or the JSON an output format's schema asks for."""
    schema = _output_schema(params)
    text = model.dumps_compact(schema_answer(schema, last_user)) if schema is not None else last_user
    if truncate:
        text = model.truncate_answer(text)
    return [{"type": "text", "text": text}], model.count_tokens(text), "max_tokens" if truncate else "end_turn"
