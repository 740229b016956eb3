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


class AtomicWriter:
    """Context manager that streams into a temporary sibling and renames it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """

    def __init__(self, path: StoragePath) -> None:
        self.path = path
        self.tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.tmp.open("wb")
        return self._fh

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        assert self._fh is not None
        self._fh.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        replace = getattr(self.tmp, "replace", None)
        if replace is not None:  # pathlib and ObjectStoragePath: one overwriting rename
            replace(self.path)
            return
        if self.path.exists():
            self.path.unlink()
        self.tmp.rename(self.path)


#: the official provider whose filesystem reads an Airflow connection for each object-storage scheme
CONNECTION_PROVIDERS = {"gs": "google", "gcs": "google", "s3": "amazon", "s3a": "amazon",
                        "abfs": "microsoft-azure", "abfss": "microsoft-azure", "az": "microsoft-azure"}
#: our extra that installs the fsspec filesystem of each scheme
EXTRAS = {"gs": "gcs", "gcs": "gcs", "s3": "s3", "s3a": "s3", "abfs": "azure", "abfss": "azure", "az": "azure"}


def ensure_filesystem(uri: str) -> None:
    """Make ``uri``'s scheme usable by Airflow's ObjectStoragePath without the official provider.

    With the provider installed (apache-airflow-providers-google / -amazon / -microsoft-azure) its
    filesystem is used and a connection (``gs://conn_id@bucket/...``) is honoured. Without it, the
    scheme's fsspec filesystem (our ``gcs`` / ``s3`` / ``azure`` extra) is attached with its own
    default credentials (ADC or ``STORAGE_EMULATOR_HOST``; AWS_* env; AZURE_STORAGE_* env); a
    connection named in the URI then cannot be read, and that is an error, not silently ignored.
    """
    from urllib.parse import urlsplit

    from airflow.sdk.io import attach, has_fs

    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in EXTRAS or has_fs(scheme):
        return
    if "@" in parts.netloc:
        raise ValueError(
            f"{uri.split('@', 1)[0]}@...: a connection on a {scheme}:// path needs the filesystem of "
            f"apache-airflow-providers-{CONNECTION_PROVIDERS[scheme]}; install it, or drop the connection "
            f"id to use the default credentials of the {scheme} filesystem")
    try:
        import fsspec

        filesystem = fsspec.filesystem(scheme)
    except ImportError as exc:
        raise ValueError(f"{scheme}:// paths need the fsspec filesystem of this scheme: pip install "
                         f"'airflow-llm-batch[{EXTRAS[scheme]}]' ({exc})") from exc
    attach(scheme, fs=filesystem)
