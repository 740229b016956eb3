"""Files, upload sessions and the error shape of the emulated Gemini Developer API.

Only generated files (batch outputs) can be downloaded, as the Files API documents; resumable
uploads check their offsets and declared size.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .gemini_answers import field as get_field
from .state import ApiError, EmulatorState, ProviderStats
from .wire import rfc3339

log = logging.getLogger(__name__)

PROVIDER = "gemini"
FILE_TTL_SECONDS = 48 * 3600
"""Files API objects are kept 48 hours."""
_HTTP_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                      404: "NOT_FOUND", 409: "ALREADY_EXISTS", 413: "INVALID_ARGUMENT",
                      429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
                      503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def status_name(http_status: int) -> str:
    """The ``google.rpc.Code`` name Google APIs pair with an HTTP status."""
    return _HTTP_STATUS_NAMES.get(http_status, "INTERNAL" if http_status >= 500 else "FAILED_PRECONDITION")


class GeminiError(ApiError):
    """A Google-shaped error answer: ``{"error": {"code", "message", "status"}}``.

    Example: ``raise GeminiError(400, "Batch has ended.", "FAILED_PRECONDITION")``
    """

    def __init__(self, status: int, message: str, grpc_status: str | None = None) -> None:
        super().__init__(status, message)
        self.grpc_status = grpc_status or status_name(status)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message, "status": self.grpc_status}}


@dataclass
class GeminiFile:
    """An uploaded file or a batch output file."""

    id: str
    display_name: str | None
    mime_type: str
    data: bytes
    created: float
    sequence: int
    source: str = "UPLOADED"

    @property
    def name(self) -> str:
        return f"files/{self.id}"

    def to_json(self, origin: str, version: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.created),
            "expirationTime": rfc3339(self.created + FILE_TTL_SECONDS),
            # the service sends the hex digest, base64-encoded (a proto bytes field holding text)
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
            "uri": f"{origin}/{version}/{self.name}",
            "state": "ACTIVE",
            "source": self.source,
        }
        if self.display_name:
            doc["displayName"] = self.display_name
        if self.source == "GENERATED":
            doc["downloadUri"] = f"{origin}/download/{version}/{self.name}:download?alt=media"
        return doc


@dataclass
class UploadSession:
    """A resumable upload between its ``start`` and its ``finalize``."""

    id: str
    display_name: str | None
    mime_type: str
    declared_size: int | None
    received: bytearray = field(default_factory=bytearray)


def _invalid(message: str) -> GeminiError:
    return GeminiError(400, message)


class GeminiFiles:
    """The Files API side of the emulated Gemini service: uploads, downloads and listings."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.files: dict[str, GeminiFile] = {}
        self.uploads: dict[str, UploadSession] = {}

    @property
    def stats(self) -> ProviderStats:
        """This provider's statistics (looked up each time: a reset replaces them)."""
        return self.state.stats_for(PROVIDER)

    # ---------------------------------------------------------------------------------- files
    def start_upload(self, meta: Mapping[str, Any], declared_size: int | None, mime_type: str | None) -> str:
        """Open a resumable upload session; return its id."""
        file_meta = get_field(meta, "file") if isinstance(meta, Mapping) else None
        file_meta = file_meta if isinstance(file_meta, Mapping) else {}
        session = UploadSession(
            id=self.state.new_id("", 32),
            display_name=get_field(file_meta, "displayName"),
            mime_type=str(get_field(file_meta, "mimeType") or mime_type or "application/octet-stream"),
            declared_size=declared_size,
        )
        self.uploads[session.id] = session
        return session.id

    def upload_chunk(self, upload_id: str, offset: int | None, data: bytes, finalize: bool) -> GeminiFile | None:
        """Append one chunk; on ``finalize`` store the file and return it."""
        session = self.uploads.get(upload_id)
        if session is None:
            raise GeminiError(404, f"Upload session {upload_id!r} not found or already finalized.")
        if offset is not None and offset != len(session.received):
            raise _invalid(f"Invalid upload offset {offset}: {len(session.received)} bytes were received.")
        session.received.extend(data)
        if not finalize:
            return None
        if session.declared_size is not None and session.declared_size != len(session.received):
            raise _invalid(f"Upload size mismatch: declared {session.declared_size} bytes, received "
                           f"{len(session.received)}.")
        del self.uploads[upload_id]
        stored = self.add_file(bytes(session.received), session.display_name, session.mime_type, "UPLOADED")
        self.stats.files_uploaded += 1
        log.info("gemini file %s uploaded: %d bytes", stored.name, len(stored.data))
        return stored

    def add_file(self, data: bytes, display_name: str | None, mime_type: str, source: str) -> GeminiFile:
        stored = GeminiFile(self.state.new_id("", 24), display_name, mime_type, data, self.state.now(),
                            self.state.next_sequence(), source)
        self.files[stored.id] = stored
        return stored

    def get_file(self, file_id: str) -> GeminiFile:
        stored = self.files.get(file_id.removeprefix("files/"))
        if stored is None:
            raise GeminiError(403, f"You do not have permission to access the File {file_id} or it may not "
                                   f"exist.")
        return stored

    def delete_file(self, file_id: str) -> None:
        del self.files[self.get_file(file_id).id]

    def download(self, file_id: str) -> bytes:
        stored = self.get_file(file_id)
        if stored.source != "GENERATED":
            raise _invalid(f"File {stored.name} was uploaded; only generated files can be downloaded.")
        return stored.data

    def list_files(self, page_size: int, offset: int) -> tuple[list[GeminiFile], int | None]:
        ordered = sorted(self.files.values(), key=lambda f: f.sequence, reverse=True)
        page = ordered[offset: offset + page_size]
        return page, offset + page_size if len(ordered) > offset + page_size else None


__all__ = ["FILE_TTL_SECONDS", "PROVIDER", "GeminiError", "GeminiFile", "GeminiFiles", "UploadSession", "status_name"]
