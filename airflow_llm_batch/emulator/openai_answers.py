"""Response bodies of the OpenAI endpoints a batch can call, built from the emulated model.

One function per endpoint turns a request body into a :class:`RowOutcome`: the HTTP status the
real endpoint would have answered, its JSON body (a full ``ChatCompletion``, ``Response``,
``CreateEmbeddingResponse``... or an error object) and the tokens it used. Request bodies that the
real endpoint would reject (no ``model``, no ``messages``...) get the 400 it would send.

Not emulated: tool calls in chat completions (a forced ``tool_choice`` still gets a text answer),
streaming, audio and images. ``n`` > 1 returns ``n`` identical choices.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import model
from .schema_values import schema_answer

ERROR_STATUS: dict[str, int] = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "internal_error": 500,
    "service_unavailable": 503,
    "timeout": 504,
    "model_not_found": 404,
    "not_found": 404,
    "invalid_api_key": 401,
    "permission_denied": 403,
}
"""HTTP status of a row failed by an ``[[emulator:error:CODE]]`` marker; other codes get 400."""

MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)


@dataclass(frozen=True)
class RowOutcome:
    """What one batch request produced."""

    status_code: int
    body: dict[str, Any]
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code < 400


@dataclass(frozen=True)
class RowContext:
    """Identity of the row being answered: seeds the ids in the answer."""

    seed: str
    created: int


def error_type_for(status: int) -> str:
    """OpenAI error ``type`` for an HTTP status."""
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_outcome(status: int, message: str, code: str | None, param: str | None = None) -> RowOutcome:
    """A failed row with OpenAI's error body."""
    error = {"message": message, "type": error_type_for(status), "param": param, "code": code}
    return RowOutcome(status, {"error": error})


def _marker_error(code: str) -> RowOutcome:
    status = ERROR_STATUS.get(code, 400)
    return error_outcome(status, f"Emulated failure '{code}' requested by a prompt marker.", code)


def injected_error(code: str) -> RowOutcome:
    """A row failed by the fault plan: the same status and body as an ``[[emulator:error:CODE]]``."""
    status = ERROR_STATUS.get(code, 400)
    return error_outcome(status, f"Emulated failure '{code}' injected by the fault plan.", code)


def _missing(param: str) -> RowOutcome:
    return error_outcome(400, f"Missing required parameter: '{param}'.", "missing_required_parameter", param)


def _model_or_error(body: Mapping[str, Any]) -> str | RowOutcome:
    """The request's ``model``, or the 400 the endpoint sends without one."""
    model_name = body.get("model")
    if not isinstance(model_name, str) or not model_name:
        return _missing("model")
    return model_name


def _input_texts_or_error(body: Mapping[str, Any]) -> list[str] | RowOutcome:
    """The texts of an embeddings/moderations ``input``, or the failure they ask for."""
    texts = embedding_inputs(body)
    if texts is None:
        return _missing("input")
    markers = model.parse_markers(texts[-1])
    if markers.error_code:
        return _marker_error(markers.error_code)
    return texts


def _text_answer(text: str, response_format: Any) -> str:
    """Echo ``text``, or the structured answer a JSON response format asks for."""
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema", response_format)
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            return model.dumps_compact(
                schema_answer(schema if isinstance(schema, Mapping) else {}, text)
            )
        if kind == "json_object":
            return model.dumps_compact(model.json_object_answer(text))
    return text


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return model.content_text(message.get("content"))
    return ""


# ------------------------------------------------------------------------------ chat completions
def chat_completion(body: Mapping[str, Any], ctx: RowContext) -> RowOutcome:
    """``POST /v1/chat/completions``."""
    model_name = _model_or_error(body)
    if isinstance(model_name, RowOutcome):
        return model_name
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _missing("messages")
    last_user = _last_user_text(messages)
    markers = model.parse_markers(last_user)
    if markers.error_code:
        return _marker_error(markers.error_code)
    answer = _text_answer(last_user, body.get("response_format"))
    finish_reason = "stop"
    if markers.truncate:
        answer, finish_reason = model.truncate_answer(answer), "length"
    requested = body.get("n")
    choices_count = requested if isinstance(requested, int) and requested > 0 else 1
    prompt = model.prompt_tokens(
        model.content_text(m.get("content")) for m in messages if isinstance(m, Mapping)
    )
    completion = model.count_tokens(answer) * choices_count
    response = {
        "id": "chatcmpl-" + model.short_id("chat", ctx.seed),
        "object": "chat.completion",
        "created": ctx.created,
        "model": model_name,
        "choices": [_chat_choice(index, answer, finish_reason) for index in range(choices_count)],
        "usage": _chat_usage(prompt, completion),
        "service_tier": "default",
        "system_fingerprint": "fp_emulator",
    }
    return RowOutcome(200, response, prompt, completion)


def _chat_choice(index: int, answer: str, finish_reason: str) -> dict[str, Any]:
    return {
        "index": index,
        "message": {"role": "assistant", "content": answer, "refusal": None, "annotations": []},
        "logprobs": None,
        "finish_reason": finish_reason,
    }


def _chat_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


# ------------------------------------------------------------------------------------- responses
def _responses_messages(input_value: Any) -> list[tuple[str, str]]:
    """(role, text) pairs of a Responses ``input``: a string or a list of items."""
    if isinstance(input_value, str):
        return [("user", input_value)]
    pairs: list[tuple[str, str]] = []
    if isinstance(input_value, list):
        for item in input_value:
            if isinstance(item, Mapping) and "role" in item:
                pairs.append((str(item.get("role")), model.content_text(item.get("content"))))
            elif isinstance(item, Mapping) and isinstance(item.get("output"), str):
                pairs.append(("tool", item["output"]))
    return pairs


def response(body: Mapping[str, Any], ctx: RowContext) -> RowOutcome:
    """``POST /v1/responses``."""
    model_name = _model_or_error(body)
    if isinstance(model_name, RowOutcome):
        return model_name
    if "input" not in body:
        return _missing("input")
    pairs = _responses_messages(body.get("input"))
    last_user = next((text for role, text in reversed(pairs) if role == "user"), "")
    markers = model.parse_markers(last_user)
    if markers.error_code:
        return _marker_error(markers.error_code)
    text_config = body.get("text")
    answer_format = text_config.get("format") if isinstance(text_config, Mapping) else None
    answer = _text_answer(last_user, answer_format)
    status, incomplete = "completed", None
    if markers.truncate:
        answer, status = model.truncate_answer(answer), "incomplete"
        incomplete = {"reason": "max_output_tokens"}
    instructions = body.get("instructions")
    texts = ([instructions] if isinstance(instructions, str) else []) + [text for _, text in pairs]
    prompt = model.prompt_tokens(texts)
    completion = model.count_tokens(answer)
    body_out = {
        "id": "resp_" + model.short_id("resp", ctx.seed, length=32),
        "object": "response",
        "created_at": ctx.created,
        "completed_at": ctx.created if status == "completed" else None,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": instructions if isinstance(instructions, str) else None,
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model_name,
        "output": [_response_message(ctx, status, answer)],
        **_response_settings(body, answer_format),
        "usage": _response_usage(prompt, completion),
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
    return RowOutcome(200, body_out, prompt, completion)


def _response_message(ctx: RowContext, status: str, answer: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_" + model.short_id("msg", ctx.seed, length=32),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": answer, "annotations": [], "logprobs": []}],
    }


def _response_settings(body: Mapping[str, Any], answer_format: Any) -> dict[str, Any]:
    """The request settings a ``Response`` echoes, with the real service's defaults."""
    return {
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": dict(answer_format) if isinstance(answer_format, Mapping) else {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
    }


def _response_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


# ------------------------------------------------------------------------------------ embeddings
def embedding_inputs(body: Mapping[str, Any]) -> list[str] | None:
    """The texts of an embeddings ``input`` (token arrays become their JSON), None if absent."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) for v in value):
            return [model.dumps_compact(value)]
        return [v if isinstance(v, str) else model.dumps_compact(v) for v in value]
    return None


def embeddings(body: Mapping[str, Any], ctx: RowContext, default_dimensions: int) -> RowOutcome:
    """``POST /v1/embeddings``."""
    model_name = _model_or_error(body)
    if isinstance(model_name, RowOutcome):
        return model_name
    texts = _input_texts_or_error(body)
    if isinstance(texts, RowOutcome):
        return texts
    dimensions = body.get("dimensions")
    if not isinstance(dimensions, int) or dimensions < 1:
        dimensions = default_dimensions
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = model.embedding_vector(text, dimensions)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
            if as_base64
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(model.count_tokens(text) for text in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return RowOutcome(200, {"object": "list", "data": data, "model": model_name, "usage": usage}, tokens, 0)


# ---------------------------------------------------------------------------- legacy completions
def completion(body: Mapping[str, Any], ctx: RowContext) -> RowOutcome:
    """``POST /v1/completions``: echoes each prompt."""
    model_name = _model_or_error(body)
    if isinstance(model_name, RowOutcome):
        return model_name
    prompt_value = body.get("prompt")
    prompts = [prompt_value] if isinstance(prompt_value, str) else prompt_value
    if not isinstance(prompts, list) or not prompts:
        return _missing("prompt")
    texts = [p if isinstance(p, str) else model.dumps_compact(p) for p in prompts]
    markers = model.parse_markers(texts[-1])
    if markers.error_code:
        return _marker_error(markers.error_code)
    finish_reason = "length" if markers.truncate else "stop"
    answers = [model.truncate_answer(t) if markers.truncate else t for t in texts]
    prompt = model.prompt_tokens(texts)
    used = sum(model.count_tokens(a) for a in answers)
    body_out = {
        "id": "cmpl-" + model.short_id("cmpl", ctx.seed),
        "object": "text_completion",
        "created": ctx.created,
        "model": model_name,
        "choices": [
            {"text": answer, "index": index, "logprobs": None, "finish_reason": finish_reason}
            for index, answer in enumerate(answers)
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": used, "total_tokens": prompt + used},
    }
    return RowOutcome(200, body_out, prompt, used)


# ----------------------------------------------------------------------------------- moderations
def moderation(body: Mapping[str, Any], ctx: RowContext) -> RowOutcome:
    """``POST /v1/moderations``: nothing is ever flagged."""
    texts = _input_texts_or_error(body)
    if isinstance(texts, RowOutcome):
        return texts
    result = {
        "flagged": False,
        "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
        "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.0),
        "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
    }
    body_out = {
        "id": "modr-" + model.short_id("modr", ctx.seed),
        "model": str(body.get("model") or "omni-moderation-latest"),
        "results": [dict(result) for _ in texts],
    }
    return RowOutcome(200, body_out, sum(model.count_tokens(t) for t in texts), 0)


Answerer = Callable[[Mapping[str, Any], RowContext], RowOutcome]


def answerer_for(endpoint: str, default_dimensions: int) -> Answerer | None:
    """The answer function of a batch ``endpoint`` (``/v1/...``), None if not emulated."""
    if endpoint == "/v1/embeddings":
        return lambda body, ctx: embeddings(body, ctx, default_dimensions)
    table: dict[str, Answerer] = {
        "/v1/chat/completions": chat_completion,
        "/v1/responses": response,
        "/v1/completions": completion,
        "/v1/moderations": moderation,
    }
    return table.get(endpoint)
