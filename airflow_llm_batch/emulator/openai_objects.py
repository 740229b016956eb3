"""Errors, stored files and create-argument checks of the emulated OpenAI Batch API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .state import ApiError


class OpenAIError(ApiError):
    """An OpenAI-shaped error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(status, message)
        self.type_ = type_
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": self.type_, "param": self.param, "code": self.code}
        }


@dataclass
class StoredFile:
    """An uploaded input file or a produced output/error file."""

    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    sequence: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }


def required_str(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise OpenAIError(
            400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
        )
    return value


def invalid_value(name: str, reason: str) -> OpenAIError:
    return OpenAIError(400, f"Invalid value for '{name}': {reason}", param=name, code="invalid_value")


def validate_metadata(metadata: Any) -> dict[str, str] | None:
    """OpenAI's metadata rules: at most 16 string pairs, keys <= 64 chars, values <= 512 chars."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise OpenAIError(400, "Invalid type for 'metadata': expected an object.", param="metadata")
    if len(metadata) > 16:
        raise OpenAIError(400, "Invalid 'metadata': too many properties (max 16).", param="metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 64:
            raise OpenAIError(
                400, "Invalid 'metadata': keys must be strings of at most 64 characters.", param="metadata"
            )
        if not isinstance(value, str) or len(value) > 512:
            raise OpenAIError(
                400,
                f"Invalid 'metadata.{key}': values must be strings of at most 512 characters.",
                param="metadata",
            )
    return dict(metadata)


__all__ = ["OpenAIError", "StoredFile", "invalid_value", "required_str", "validate_metadata"]
