"""Cloud Storage objects through google-cloud-storage (no gcsfs needed).

Writes stream through a resumable upload (bounded memory) and are atomic: an object appears only
when its upload is finalised on a clean close; on an exception the upload session is cancelled and
the previous object, if any, stays as it was. That is GCS's own atomic replace, so no temporary
name + copy + delete is needed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.clients import storage_client
from airflow_llm_batch.google.settings import GoogleSettings, google_settings

log = logging.getLogger(__name__)

#: resumable upload chunk: the writer's memory bound (must be a multiple of 256 KiB)
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class GcsObject:
    """``gs://bucket/name`` with the few path methods the sinks and ``read_rows_file`` use.

    Example::

        obj = GcsObject.parse("gs://bucket/triage/2026-11-21.jsonl")
        with obj.open("wb") as fh:  # visible only once the block ends without an exception
            fh.write(b'{"a": 1}\\n')
    """

    bucket: str
    path: str
    conn_id: str | None = None

    @classmethod
    def parse(cls, uri: str, conn_id: str | None = None) -> GcsObject:
        if not uri.startswith("gs://"):
            raise InvalidInputError(f"{uri!r} is not a gs:// URI")
        bucket, _, path = uri[5:].partition("/")
        named, _, bucket = bucket.rpartition("@")  # gs://conn_id@bucket/..., as ObjectStoragePath reads it
        if named and conn_id and named != conn_id:
            raise InvalidInputError(f"gs://{named}@...: the URI names connection {named!r} and conn_id is "
                                    f"{conn_id!r}; keep one")
        if not bucket or not path or path.endswith("/"):
            raise InvalidInputError(f"{uri!r}: expected gs://BUCKET/OBJECT (or gs://CONN_ID@BUCKET/OBJECT)")
        return cls(bucket, path, named or conn_id)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def with_name(self, name: str) -> GcsObject:
        head = self.path.rsplit("/", 1)[0] + "/" if "/" in self.path else ""
        return GcsObject(self.bucket, head + name, self.conn_id)

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.path}"

    def settings(self) -> GoogleSettings:
        return google_settings(self.conn_id)

    def blob(self) -> Any:
        return storage_client(self.settings()).bucket(self.bucket).blob(self.path)

    def exists(self) -> bool:
        return bool(self.blob().exists())

    def open(self, mode: str = "rb", **kwargs: Any) -> IO[bytes]:
        """``"rb"``: a seekable streaming reader; ``"wb"``: an atomic streaming writer."""
        if mode == "rb":
            return self.blob().open("rb", **kwargs)  # type: ignore[no-any-return]
        if mode == "wb":
            return self.blob().open("wb", ignore_flush=True, chunk_size=UPLOAD_CHUNK_BYTES,  # type: ignore[no-any-return]
                                    **kwargs)
        raise ValueError(f"mode {mode!r} is not supported for {self}")

    def check_bucket(self) -> None:
        """InvalidInputError if the bucket does not exist (or cannot be seen with these credentials)."""
        client = storage_client(self.settings())
        if client.lookup_bucket(self.bucket) is None:
            raise InvalidInputError(f"GCS bucket {self.bucket!r} does not exist or is not visible "
                                    f"({self.settings().describe('storage')}); nothing was submitted.")


@contextlib.contextmanager
def atomic_gcs_writer(obj: GcsObject) -> Iterator[IO[bytes]]:
    """A writer whose object appears only if the block ends cleanly (the upload is cancelled otherwise)."""
    with obj.open("wb") as fh:
        yield fh
    log.info("Wrote %s", obj)
