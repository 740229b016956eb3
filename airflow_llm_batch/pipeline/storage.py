"""The small slice of a path API the engine needs; `pathlib.Path` and Airflow's ObjectStoragePath both fit."""

from __future__ import annotations

import json
import uuid
from typing import IO, Any, Protocol


class StoragePath(Protocol):
    """A local or remote path (file://, gs://, s3://...)."""

    @property
    def name(self) -> str: ...

    def __truediv__(self, other: Any, /) -> Any: ...

    @property
    def parent(self) -> Any: ...

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any: ...

    def exists(self) -> bool: ...

    def iterdir(self) -> Any: ...

    def mkdir(self, *args: Any, **kwargs: Any) -> None: ...

    def unlink(self, missing_ok: bool = False) -> None: ...

    def rename(self, target: Any) -> Any: ...


def write_bytes_atomically(path: StoragePath, data: bytes) -> None:
    """Write to a temporary sibling, then rename, so readers never see half a file."""
    with AtomicWriter(path) as fh:
        fh.write(data)


def write_json_atomically(path: StoragePath, document: Any) -> None:
    write_bytes_atomically(path, json.dumps(document, indent=1, sort_keys=True).encode())


def read_json(path: StoragePath) -> Any:
    with path.open("rb") as fh:
        return json.loads(fh.read())


def is_object_store(path: StoragePath) -> bool:
    """Whether ``path`` is on an object store reached through an async fsspec filesystem (gcsfs, s3fs,
    adlfs), whose buffered uploads publish an object whole when they complete and can be discarded;
    local paths (pathlib, file://) and other filesystems are not."""
    if str(getattr(path, "protocol", "") or "file") in ("file", "local"):
        return False
    from fsspec.asyn import AsyncFileSystem

    return isinstance(getattr(path, "fs", None), AsyncFileSystem)


class AtomicWriter:
    """Context manager that writes ``path`` so that readers never see half a file.

    Locally it streams into a temporary sibling and renames it over ``path`` on success. On object
    storage it streams straight to ``path``: the store publishes the object only when the upload
    completes at close (a rename there is a copy and a delete: slow, and not atomic either). On an
    exception the temporary file is removed, or the upload discarded, and ``path`` is left as it was.
    """

    def __init__(self, path: StoragePath) -> None:
        self.path = path
        self.direct = is_object_store(path)
        self.tmp = path if self.direct else path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.tmp.open("wb")
        return untracked(self._fh)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        assert self._fh is not None
        if exc_type is not None:
            self._abandon(self._fh)
            return
        self._fh.close()
        if not self.direct:
            self._move_into_place()

    def _move_into_place(self) -> None:
        replace = getattr(self.tmp, "replace", None)
        if replace is not None:  # pathlib and ObjectStoragePath: one overwriting rename
            try:
                replace(self.path)
                return
            except NotImplementedError:  # universal-pathlib paths (UnsupportedOperation)
                pass
        if self.path.exists():
            self.path.unlink()
        self.tmp.rename(self.path)

    def _abandon(self, fh: IO[bytes]) -> None:
        discard = getattr(fh, "discard", None) if self.direct else None
        if discard is not None:  # fsspec's buffered upload: drop it without publishing anything
            discard()
            return
        fh.close()
        self.tmp.unlink(missing_ok=True)


def untracked(fh: IO[bytes]) -> IO[bytes]:
    """``fh`` without Airflow's lineage tracking per call. ObjectStoragePath.open wraps the file so that
    every ``write`` records the path as an output asset (rebuilding its URI each time: ~10 us per call,
    i.e. per row for a results file). The asset is recorded once here, then the file itself is written."""
    inner = getattr(fh, "_obj", None)
    if inner is None or type(fh).__name__ != "_TrackingFileWrapper":
        return fh
    fh.write(b"")  # the lineage record, once per file
    return inner  # type: ignore[no-any-return]


#: our extra that installs the fsspec filesystem of each scheme
EXTRAS = {"gs": "gcs", "gcs": "gcs", "s3": "s3", "s3a": "s3", "abfs": "azure", "abfss": "azure", "az": "azure"}


def _emulator_filesystem(scheme: str) -> Any:
    """The filesystem for a GCS emulator (``STORAGE_EMULATOR_HOST``), else None. Anonymous, as the gs://
    sinks are on a plain-HTTP endpoint, and gcsfs's core class: its default class first asks the
    storage-control gRPC API for each bucket's layout, which an emulator does not serve (60 s per
    bucket before it falls back)."""
    import os

    if scheme not in ("gs", "gcs") or not os.environ.get("STORAGE_EMULATOR_HOST"):
        return None
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem(token="anon")


def ensure_filesystem(uri: str) -> None:
    """Make ``uri``'s scheme usable by Airflow's ObjectStoragePath without the official provider.

    With the provider installed (apache-airflow-providers-google / -amazon / -microsoft-azure) its
    filesystem is used, and it reads a connection named in the URI (``gs://conn_id@bucket/...``). Without
    it, the scheme's fsspec filesystem (our ``gcs`` / ``s3`` / ``azure`` extra) is attached: configured
    from the connection named in the URI (storage_connections/: its fields mapped onto the filesystem's
    options, the ones that cannot be honoured refused by name), else with the filesystem's own default
    credentials (ADC or ``STORAGE_EMULATOR_HOST``; AWS_* env; AZURE_STORAGE_* env).
    """
    from urllib.parse import urlsplit

    from airflow.sdk.io import attach, has_fs

    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in EXTRAS or has_fs(scheme):
        return
    conn_id = parts.netloc.rpartition("@")[0]
    try:
        import fsspec

        if conn_id:
            from airflow_llm_batch.storage_connections import attach_connection

            attach_connection(scheme, conn_id)
            return
        filesystem = _emulator_filesystem(scheme) or fsspec.filesystem(scheme)
    except ImportError as exc:
        raise ValueError(f"{scheme}:// paths need the fsspec filesystem of this scheme: pip install "
                         f"'airflow-llm-batch[{EXTRAS[scheme]}]' ({exc})") from exc
    attach(scheme, fs=filesystem)
