"""One translator from the neutral `LLMRequest` to a ``GenerateContentRequest`` (wire JSON), for both
Google batch APIs (the Gemini Developer API and Vertex AI): the request has the same shape on both.
What differs per API is data, a :class:`Dialect`: which endpoints it serves, whether the request
names its model, and how ``request_params`` are read (see ``gemini_request`` and ``vertex_request``).

The shape
    * the prompt -> one ``contents`` entry with role ``user``; ``system_prompt`` -> ``systemInstruction``;
    * a JSON schema -> ``generationConfig.responseMimeType = "application/json"`` and
      ``responseJsonSchema`` = the schema as is (JSON Schema, unchanged); JSON without a schema ->
      ``responseMimeType`` only;
    * the dialect's generation fields join ``generationConfig``; its request-level fields
      (``safetySettings``, ``tools``, ...) sit next to it.

Example: ``generate_content_request(request, VERTEX)["contents"][0]["parts"][0]["text"] == request.prompt``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline.types import Endpoint, LLMRequest

#: request params -> (``generationConfig`` fields, request-level fields), both with wire names
ParamReader = Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True)
class Dialect:
    """What one Google API does differently with the same request shape."""

    api: str
    """How errors name the API (``"Gemini"``, ``"Vertex batch prediction"``)."""
    endpoints: frozenset[Endpoint]
    read_params: ParamReader
    model_field: Callable[[str], str] | None = None
    """The request's own ``model`` field from the model name, when the API wants one in the request."""


def generate_content_request(request: LLMRequest, dialect: Dialect) -> dict[str, Any]:
    """The ``GenerateContentRequest`` of one row; InvalidInputError before anything is paid."""
    if request.endpoint not in dialect.endpoints:
        raise InvalidInputError(f"{dialect.api} batches here run generateContent only, not "
                                f"{request.endpoint.value}; use endpoint='chat_completions'")
    generation, request_fields = dialect.read_params(request.params)
    body: dict[str, Any] = {"model": dialect.model_field(request.model)} if dialect.model_field else {}
    body["contents"] = [{"role": "user", "parts": [{"text": request.prompt}]}]
    if request.system_prompt:
        body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
    config = {**generation, **_answer_format(request)}
    if config:
        body["generationConfig"] = config
    body.update(request_fields)
    return body


def _answer_format(request: LLMRequest) -> dict[str, Any]:
    if request.response_schema is not None:
        return {"responseMimeType": "application/json", "responseJsonSchema": request.response_schema}
    return {"responseMimeType": "application/json"} if request.json_output else {}
