"""Results as JSONL or Parquet on object storage, streamed, and atomic (readers never see half a file).

``gs://`` goes through google-cloud-storage (resumable upload, atomic on finalise; no gcsfs
needed); every other scheme (``file://``, ``s3://``...) through ObjectStoragePath, writing a
temporary sibling that is renamed when complete.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any, ClassVar

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.uris import merge_options, split_options
from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.run_folder import ResultLines
from airflow_llm_batch.pipeline.storage import AtomicWriter
from airflow_llm_batch.pipeline.types import ResultRow, RowStatus
from airflow_llm_batch.sinks.base import LandingContext

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "parquet")
FAILURES = ("inline", "separate")
_PARQUET_SUFFIXES = (".parquet", ".pq")


_FAILED = RowStatus.FAILED.value


class ObjectStorageSink:
    """``file://``, ``gs://``, ``s3://``... as JSONL (default) or Parquet.

    Options (keyword arguments, or ``?name=value`` after the URI, e.g. from a templated
    ``destination``):

    * ``format``: ``jsonl`` or ``parquet``; default by suffix (``.parquet``/``.pq`` -> Parquet).
    * ``failures``: ``inline`` (default: failed rows in the same file, with status and error) or
      ``separate`` (failed rows in ``<stem>.failures.jsonl`` next to the results; always written,
      empty when nothing failed, so a stale file never survives a re-run).
    * ``row_group_size``: Parquet rows per row group (default 10,000), the memory bound.
    * ``conn_id``: Google connection for ``gs://`` (default ``google_cloud_default``).

    A re-landing replaces the file(s) whole, so a retry never duplicates rows.

    Example::

        ObjectStorageSink("gs://bucket/triage/2026-11-21.parquet", failures="separate")
        # or, in an operator: destination="gs://bucket/triage/{{ ds }}.parquet?failures=separate"
    """

    template_fields: ClassVar[tuple[str, ...]] = ("uri",)
    _OPTIONS: ClassVar[frozenset[str]] = frozenset({"format", "failures", "row_group_size", "conn_id"})

    def __init__(self, destination: str, **options: Any) -> None:
        self.uri = destination
        self.given = options

    def __repr__(self) -> str:
        return f"ObjectStorageSink({self.uri!r}{''.join(f', {k}={v!r}' for k, v in self.given.items())})"

    # -- configuration (read lazily: the URI may be a template until the task runs) -----------------
    @property
    def target(self) -> str:
        return split_options(self.uri)[0]

    def options(self) -> dict[str, Any]:
        base, from_uri = split_options(self.uri)
        merged = merge_options(from_uri, self.given, where=base)
        unknown = sorted(set(merged) - self._OPTIONS)
        if unknown:
            raise InvalidInputError(f"unknown options for an object storage destination: {unknown}; "
                                    f"known: {sorted(self._OPTIONS)}")
        fmt = str(merged.get("format") or ("parquet" if base.lower().endswith(_PARQUET_SUFFIXES) else "jsonl"))
        failures = str(merged.get("failures") or "inline")
        if fmt.lower() not in FORMATS:
            raise InvalidInputError(f"format={fmt!r}: use one of {FORMATS}")
        if failures.lower() not in FAILURES:
            raise InvalidInputError(f"failures={failures!r}: use one of {FAILURES}")
        try:
            group = int(merged.get("row_group_size") or 10_000)
        except ValueError as exc:
            raise InvalidInputError(f"row_group_size={merged['row_group_size']!r} is not a number") from exc
        return {"format": fmt.lower(), "failures": failures.lower(), "row_group_size": group,
                "conn_id": merged.get("conn_id")}

    # -- the Sink protocol -------------------------------------------------------------------------
    def check(self, context: LandingContext) -> None:
        opts = self.options()
        if opts["format"] == "parquet":
            from airflow_llm_batch.sinks.parquet import require_pyarrow

            require_pyarrow()
        if self.target.startswith("gs://"):
            from airflow_llm_batch.google.gcs import GcsObject

            target = GcsObject.parse(self.target, opts["conn_id"])
            target.check_bucket()
            probe_gcs(target)
            return
        try:
            self._path(self.target).fs  # noqa: B018 - resolving the filesystem fails fast on an unknown scheme
        except (ValueError, ImportError) as exc:
            raise InvalidInputError(f"destination {self.uri!r}: {exc}; nothing was submitted.") from exc
        probe_path(self._path(self.target))

    def write(self, rows: Iterable[ResultRow], context: LandingContext) -> dict[str, Any]:
        return self.write_records((row.to_dict() for row in rows), context)

    def takes_lines(self) -> bool:
        """Whether :meth:`write_records` may be given whole results files (``ResultLines``) to copy as they
        are: JSONL with failures inline (no option looks at each row)."""
        opts = self.options()
        return bool(opts["format"] == "jsonl" and opts["failures"] == "inline")

    def write_records(self, records: Iterable[dict[str, Any] | ResultLines],
                      context: LandingContext) -> dict[str, Any]:
        """:meth:`write` for rows given as their ``ResultRow.to_dict()`` records (landing reads the results
        files straight into these: no row object per row). Each is written as given; a ``ResultLines``
        item (only when :meth:`takes_lines`) is copied as its file's bytes."""
        opts = self.options()
        separate = opts["failures"] == "separate"
        failures_name = _failures_name(self.target)
        counts = [0, 0]  # succeeded, failed
        with contextlib.ExitStack() as stack:
            main = stack.enter_context(self._open(self.target, opts["conn_id"]))
            side = stack.enter_context(self._open(failures_name, opts["conn_id"])) if separate else None
            writer = _record_writer(main, opts, context)
            try:
                _write_all(records, writer, main, side, counts)
                writer.close()
            except BaseException:
                writer.abort()
                raise
        succeeded, failed = counts
        landed: dict[str, Any] = {"uri": self.target, "format": opts["format"], "rows": succeeded + failed,
                                  "succeeded": succeeded, "failed": failed}
        if separate:
            landed["failures_uri"] = failures_name
        log.info("Landed %d rows (%d failed) as %s at %s%s", landed["rows"], failed, opts["format"],
                 self.target, f"; failures in {failures_name}" if separate else "")
        return landed

    # -- plumbing ----------------------------------------------------------------------------------
    @staticmethod
    def _path(uri: str) -> Any:
        from airflow_llm_batch.sources.rows import to_path

        try:
            return to_path(uri)
        except ValueError as exc:
            raise InvalidInputError(f"destination {uri!r}: {exc}; nothing was submitted.") from exc

    @contextlib.contextmanager
    def _open(self, uri: str, conn_id: str | None) -> Iterator[IO[bytes]]:
        if uri.startswith("gs://"):
            from airflow_llm_batch.google.gcs import GcsObject, atomic_gcs_writer

            with atomic_gcs_writer(GcsObject.parse(uri, conn_id)) as fh:
                yield fh
        else:
            with AtomicWriter(self._path(uri)) as fh:
                yield fh


def _probe_name() -> str:
    return f".llmb-write-probe-{uuid.uuid4().hex}"


def probe_path(target: Any) -> None:
    """Create ``target``'s parent and write then remove a probe object there: an unwritable
    destination fails before anything is paid for, not after the batches end."""
    probe = target.parent / _probe_name()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except Exception as exc:  # PermissionError, NotADirectoryError, a store's own errors...
        raise InvalidInputError(f"destination {target} is not writable ({type(exc).__name__}: {exc}); fix the "
                                f"path or its permissions. Nothing was submitted.") from exc


def probe_gcs(target: Any) -> None:
    """Write then delete a probe object next to ``target`` (a GcsObject) with the task's credentials."""
    probe = target.with_name(_probe_name())
    try:
        blob = probe.blob()
        blob.upload_from_string(b"")
        blob.delete()
    except Exception as exc:  # Forbidden, NotFound...
        raise InvalidInputError(f"destination {target} is not writable ({type(exc).__name__}: {exc}); grant the "
                                f"task's credentials object create/delete there. Nothing was submitted.") from exc


def _write_all(records: Iterable[dict[str, Any] | ResultLines], writer: Any, main: IO[bytes],
               side: IO[bytes] | None, counts: list[int]) -> None:
    """Write each record (a failed one to ``side`` when given), or copy each ``ResultLines`` to ``main``;
    add the rows to ``counts`` ([succeeded, failed])."""
    dumps_line = fast_json.dumps_line
    write = writer.write
    succeeded = failed = 0
    for record in records:
        if type(record) is not dict:  # a whole results file, as landed (JSONL, failures inline only)
            assert isinstance(record, ResultLines) and side is None
            record.copy_to(main)
            succeeded += record.succeeded
            failed += record.failed
        elif record["status"] == _FAILED:
            failed += 1
            if side is not None:
                side.write(dumps_line(record))
                continue
            write(record)
        else:
            succeeded += 1
            write(record)
    counts[0], counts[1] = succeeded, failed


def _failures_name(uri: str) -> str:
    head, _, name = uri.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}/{stem}.failures.jsonl"


class _JsonlWriter:
    """One JSON line per record."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh

    def write(self, record: dict[str, Any]) -> None:
        self.fh.write(fast_json.dumps_line(record))

    def close(self) -> None:
        """Nothing to finish: the atomic writer finalises the file."""

    def abort(self) -> None:
        """Nothing to undo: the atomic writer discards the file."""


def _record_writer(fh: IO[bytes], opts: dict[str, Any], context: LandingContext) -> Any:
    """An object with ``write(record)`` (a ``ResultRow.to_dict()``), ``close()`` and ``abort()`` for the
    chosen format."""
    if opts["format"] == "jsonl":
        return _JsonlWriter(fh)
    from airflow_llm_batch.sinks.parquet import ParquetResultWriter

    return ParquetResultWriter(fh, context.response_schema, opts["row_group_size"])
