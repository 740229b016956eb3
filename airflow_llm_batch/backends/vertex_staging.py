"""Where a Vertex AI batch prediction job reads its chunk and writes its answers (:class:`VertexStaging`,
from the connection's ``vertex_staging_uri`` / ``vertex_output_uri``), and the Cloud Storage and
BigQuery clients that move them (:class:`GoogleClients`)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.google.settings import GoogleSettings


@dataclass(frozen=True)
class _Location:
    """``gs://bucket/prefix`` or ``bq://project.dataset``."""

    scheme: str
    bucket_or_project: str
    path_or_dataset: str

    @classmethod
    def parse(cls, uri: str, default_project: str | None, what: str) -> _Location:
        text = uri.strip().rstrip("/")
        if text.startswith("gs://"):
            bucket, _, prefix = text[5:].partition("/")
            if not bucket:
                raise InvalidInputError(f"{what} {uri!r}: expected gs://BUCKET[/PREFIX]")
            return cls("gs", bucket, prefix)
        if text.startswith("bq://"):
            parts = text[5:].split(".")
            if len(parts) == 1 and default_project:
                parts = [default_project, *parts]
            if len(parts) != 2 or not all(parts):
                raise InvalidInputError(f"{what} {uri!r}: expected bq://PROJECT.DATASET (a dataset, not a table)")
            return cls("bq", parts[0], parts[1])
        raise InvalidInputError(f"{what} {uri!r}: use gs://BUCKET/PREFIX or bq://PROJECT.DATASET")

    def child(self, *names: str) -> str:
        """``gs://bucket/prefix/a/b`` or ``project.dataset.a`` (BigQuery table id)."""
        if self.scheme == "gs":
            return "/".join(["gs:/", self.bucket_or_project, *[p for p in (self.path_or_dataset, *names) if p]])
        return ".".join([self.bucket_or_project, self.path_or_dataset, *names])

    def __str__(self) -> str:
        if self.scheme == "gs":
            return f"gs://{self.bucket_or_project}/{self.path_or_dataset}".rstrip("/")
        return f"bq://{self.bucket_or_project}.{self.path_or_dataset}"


@dataclass(frozen=True)
class VertexStaging:
    """Where chunks are staged for the jobs (``input``) and where the jobs write (``output``).

    Example: ``VertexStaging.parse("gs://my-bucket/llm-batch", output="bq://my-project.llm_results")``
    """

    input: _Location
    output: _Location

    @classmethod
    def parse(cls, staging: str | None, output: str | None = None, project: str | None = None) -> VertexStaging:
        if not staging:
            raise InvalidInputError("Vertex batch prediction needs a staging location for its input: set the "
                                    "connection extra 'vertex_staging_uri' to gs://BUCKET/PREFIX or "
                                    "bq://PROJECT.DATASET")
        source = _Location.parse(staging, project, "vertex_staging_uri")
        if output:
            target = _Location.parse(output, project, "vertex_output_uri")
        elif source.scheme == "gs":
            target = _Location("gs", source.bucket_or_project, "/".join(p for p in (source.path_or_dataset,
                                                                                     "output") if p))
        else:
            target = source
        return cls(source, target)

    def input_for(self, tag: str) -> str:
        if self.input.scheme == "gs":
            return self.input.child(tag, "requests.jsonl")
        return self.input.child(_table_name("llmb_in", tag))

    def output_for(self, tag: str) -> str:
        if self.output.scheme == "gs":
            return self.output.child(tag)
        return f"bq://{self.output.child(_table_name('llmb_out', tag))}"


def _table_name(prefix: str, tag: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', tag)}"[:1024]


class GoogleClients:
    """Cloud Storage and BigQuery clients for one connection, built on first use (in a worker thread).

    Example: ``GoogleClients(google_settings("google_cloud_default"), project="my-project").gcs()``
    """

    def __init__(self, settings: GoogleSettings, project: str | None) -> None:
        self.settings = settings
        self.project = project
        self._lock = threading.Lock()
        self._gcs: Any = None
        self._bigquery: Any = None

    def gcs(self) -> Any:
        from airflow_llm_batch.google import storage_client

        with self._lock:
            if self._gcs is None:
                self._gcs = storage_client(self.settings, self.project)
            return self._gcs

    def bigquery(self) -> Any:
        from airflow_llm_batch.google import bigquery_client

        with self._lock:
            if self._bigquery is None:
                self._bigquery = bigquery_client(self.settings, self.project)
            return self._bigquery

    def close(self) -> None:
        with self._lock:
            for client in (self._gcs, self._bigquery):
                close = getattr(client, "close", None)
                if close is not None:
                    close()
            self._gcs = self._bigquery = None
