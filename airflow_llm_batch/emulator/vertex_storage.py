"""Where emulated Vertex batch jobs read their input and write their output: a Cloud Storage
emulator (gcp-storage-emulator, its JSON API) and a BigQuery emulator (bqemulator, its REST API),
both reached over HTTP with aiohttp, so the emulator's event loop never blocks.

The endpoints come from :class:`VertexStorage`: set at run time through the control route
``POST /_emulator/vertex/storage`` (see :mod:`.vertex_api`), else read at each use from the
environment variables ``STORAGE_EMULATOR_HOST`` and ``BIGQUERY_EMULATOR_HOST`` (``host:port`` or
a URL), the names Google's own clients and emulators use. Nothing is sent anywhere else: without
an endpoint a job fails with a clear error.

Example::

    storage = VertexStorage(gcs_endpoint="http://127.0.0.1:9023")
    async with aiohttp.ClientSession() as session:
        gcs = GcsClient(session, storage.require_gcs())
        async for line in gcs.read_lines(GcsUri.parse("gs://bucket/in.jsonl")):
            ...
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

GCS_ENV = "STORAGE_EMULATOR_HOST"
BIGQUERY_ENV = "BIGQUERY_EMULATOR_HOST"
READ_CHUNK_BYTES = 1024 * 1024
TABLEDATA_PAGE_ROWS = 5000
READ_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)
_TABLE_URI = re.compile(r"^bq://(?:(?P<project>[^./]+)\.)?(?P<dataset>[A-Za-z0-9_]+)(?:\.(?P<table>[\w$-]+))?$")


class StorageError(Exception):
    """A read or write the job needs failed; ``canonical`` is the Google status to report."""

    def __init__(self, canonical: str, message: str) -> None:
        super().__init__(message)
        self.canonical = canonical
        self.message = message


def _url(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip().rstrip("/")
    return text if "://" in text else f"http://{text}"


@dataclass(frozen=True)
class VertexStorage:
    """The GCS and BigQuery emulator endpoints the jobs use (None: from the environment)."""

    gcs_endpoint: str | None = None
    bigquery_endpoint: str | None = None

    def resolved(self) -> VertexStorage:
        return VertexStorage(_url(self.gcs_endpoint) or _url(os.environ.get(GCS_ENV)),
                             _url(self.bigquery_endpoint) or _url(os.environ.get(BIGQUERY_ENV)))

    def require_gcs(self) -> str:
        return _required(self.resolved().gcs_endpoint, "Cloud Storage", GCS_ENV)

    def require_bigquery(self) -> str:
        return _required(self.resolved().bigquery_endpoint, "BigQuery", BIGQUERY_ENV)


def _required(endpoint: str | None, service: str, env: str) -> str:
    """``endpoint``, or the error that says how to give the emulator one."""
    if not endpoint:
        raise StorageError("FAILED_PRECONDITION", f"the emulator has no {service} endpoint: set {env} "
                                                  f"or POST /_emulator/vertex/storage")
    return endpoint


# -- Cloud Storage ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GcsUri:
    """``gs://bucket/name`` (``name`` may be a prefix)."""

    bucket: str
    name: str

    @classmethod
    def parse(cls, uri: str) -> GcsUri:
        if not uri.startswith("gs://"):
            raise StorageError("INVALID_ARGUMENT", f"{uri!r} is not a gs:// URI")
        bucket, _, name = uri[5:].partition("/")
        if not bucket:
            raise StorageError("INVALID_ARGUMENT", f"{uri!r} has no bucket")
        return cls(bucket, name)

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


class GcsClient:
    """The few calls of the Cloud Storage JSON API a batch job makes."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str) -> None:
        self.session = session
        self.endpoint = endpoint

    def _object_url(self, uri: GcsUri) -> str:
        return f"{self.endpoint}/storage/v1/b/{quote(uri.bucket, safe='')}/o/{quote(uri.name, safe='')}"

    async def read_lines(self, uri: GcsUri) -> AsyncIterator[bytes]:
        """The object's lines (without line ends), streamed."""
        async with self.session.get(self._object_url(uri), params={"alt": "media"}) as response:
            if response.status == 404:
                raise StorageError("NOT_FOUND", f"input file {uri} does not exist")
            if response.status >= 400:
                raise StorageError("INTERNAL", f"reading {uri} failed with HTTP {response.status}")
            pending = b""
            async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line
            if pending:
                yield pending

    async def bucket_exists(self, bucket: str) -> bool:
        async with self.session.get(f"{self.endpoint}/storage/v1/b/{quote(bucket, safe='')}") as response:
            return response.status == 200

    async def write(self, uri: GcsUri, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Upload ``data`` (gcp-storage-emulator cannot take a JSON media type on a media upload)."""
        if not await self.bucket_exists(uri.bucket):
            raise StorageError("NOT_FOUND", f"output bucket {uri.bucket!r} does not exist")
        url = f"{self.endpoint}/upload/storage/v1/b/{quote(uri.bucket, safe='')}/o"
        async with self.session.post(url, params={"uploadType": "media", "name": uri.name}, data=data,
                                     headers={"Content-Type": content_type}) as response:
            if response.status >= 400:
                raise StorageError("INTERNAL", f"writing {uri} failed with HTTP {response.status}")


# -- BigQuery -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableRef:
    """``bq://project.dataset[.table]``."""

    project: str
    dataset: str
    table: str | None = None

    @classmethod
    def parse(cls, uri: str, default_project: str) -> TableRef:
        match = _TABLE_URI.match(uri.strip())
        if not match:
            raise StorageError("INVALID_ARGUMENT", f"{uri!r} is not a BigQuery URI (bq://project.dataset[.table])")
        return cls(match["project"] or default_project, match["dataset"], match["table"])

    def with_table(self, table: str) -> TableRef:
        return TableRef(self.project, self.dataset, table)

    def __str__(self) -> str:
        return f"bq://{self.project}.{self.dataset}" + (f".{self.table}" if self.table else "")


@dataclass(frozen=True)
class BqField:
    name: str
    type: str
    mode: str = "NULLABLE"


def _from_cell(value: Any, field: BqField) -> Any:
    """One ``tabledata.list`` cell (strings on the wire) -> a JSON-ready value."""
    if value is None:
        return None
    kind = field.type.upper()
    if kind == "JSON":
        return json.loads(value) if isinstance(value, str) else value
    if kind in ("INTEGER", "INT64"):
        return int(value)
    if kind in ("FLOAT", "FLOAT64"):
        return float(value)
    if kind in ("BOOLEAN", "BOOL"):
        return value in (True, "true", "TRUE")
    if kind == "TIMESTAMP":
        try:
            return dt.datetime.fromtimestamp(float(value), dt.timezone.utc).isoformat()
        except ValueError:
            return value
    return value


class BigQueryClient:
    """The few calls of the BigQuery REST API a batch job makes (reads page by page, writes by load job)."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str) -> None:
        self.session = session
        self.base = f"{endpoint}/bigquery/v2"
        self.upload = f"{endpoint}/upload/bigquery/v2"

    def _table_url(self, ref: TableRef) -> str:
        return f"{self.base}/projects/{ref.project}/datasets/{ref.dataset}/tables/{ref.table}"

    async def schema(self, ref: TableRef) -> list[BqField] | None:
        """The table's top-level fields, or None when the table does not exist."""
        async with self.session.get(self._table_url(ref)) as response:
            if response.status == 404:
                return None
        body = await self._get_json(self._table_url(ref), f"the schema of {ref}")
        return [BqField(f["name"], f.get("type", "STRING"), f.get("mode", "NULLABLE"))
                for f in (body.get("schema") or {}).get("fields", [])]

    async def dataset_exists(self, ref: TableRef) -> bool:
        async with self.session.get(f"{self.base}/projects/{ref.project}/datasets/{ref.dataset}") as response:
            return response.status == 200

    async def _get_json(self, url: str, what: str, params: Mapping[str, str] | None = None) -> Any:
        """GET with a few tries on 5xx (bqemulator's reads can fail under concurrent requests)."""
        for delay in (*READ_RETRY_DELAYS, None):
            async with self.session.get(url, params=params) as response:
                if response.status < 400:
                    return await response.json()
                if response.status < 500 or delay is None:
                    raise StorageError("INTERNAL", f"reading {what} failed with HTTP {response.status}: "
                                                   f"{(await response.text())[:300]}")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def rows(self, ref: TableRef, fields: list[BqField]) -> AsyncIterator[dict[str, Any]]:
        """Every row as a dict, read page by page."""
        token: str | None = None
        while True:
            params = {"maxResults": str(TABLEDATA_PAGE_ROWS), **({"pageToken": token} if token else {})}
            page = await self._get_json(f"{self._table_url(ref)}/data", str(ref), params)
            for row in page.get("rows") or []:
                cells = row.get("f") or []
                yield {field.name: _from_cell(cell.get("v"), field) for field, cell in zip(fields, cells, strict=False)}
            token = page.get("pageToken")
            if not token or not page.get("rows"):
                return

    async def create_table(self, ref: TableRef, fields: Iterable[BqField]) -> None:
        body = {"tableReference": {"projectId": ref.project, "datasetId": ref.dataset, "tableId": ref.table},
                "schema": {"fields": [{"name": f.name, "type": f.type, "mode": f.mode} for f in fields]}}
        url = f"{self.base}/projects/{ref.project}/datasets/{ref.dataset}/tables"
        async with self.session.post(url, json=body) as response:
            if response.status == 409:
                return
            if response.status >= 400:
                raise StorageError("INTERNAL", f"creating {ref} failed with HTTP {response.status}")

    async def load(self, ref: TableRef, fields: Iterable[BqField], records: Iterable[Mapping[str, Any]]) -> None:
        """Append ``records`` with one NDJSON load job (multipart upload), as a service would."""
        data = b"".join((json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n").encode() for r in records)
        if not data:
            return
        job = {"configuration": {"load": {
            "destinationTable": {"projectId": ref.project, "datasetId": ref.dataset, "tableId": ref.table},
            "sourceFormat": "NEWLINE_DELIMITED_JSON", "writeDisposition": "WRITE_APPEND",
            "schema": {"fields": [{"name": f.name, "type": f.type, "mode": f.mode} for f in fields]}}}}
        boundary = f"vertex-emulator-{uuid.uuid4().hex}"
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(job)}\r\n"
                f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        body += data + f"\r\n--{boundary}--\r\n".encode()
        async with self.session.post(f"{self.upload}/projects/{ref.project}/jobs",
                                     params={"uploadType": "multipart"}, data=body,
                                     headers={"Content-Type": f"multipart/related; boundary={boundary}"}) as response:
            result = await response.json(content_type=None)
            if response.status >= 400:
                raise StorageError("INTERNAL", f"loading into {ref} failed with HTTP {response.status}")
        await self._wait_done(ref, result)

    async def _wait_done(self, ref: TableRef, job: Mapping[str, Any]) -> None:
        reference = job.get("jobReference") or {}
        for _ in range(600):
            status = job.get("status") or {}
            if status.get("state") == "DONE":
                if status.get("errorResult"):
                    raise StorageError("INTERNAL", f"loading into {ref} failed: "
                                                   f"{status['errorResult'].get('message', 'load job error')}")
                return
            await asyncio.sleep(0.05)
            url = f"{self.base}/projects/{reference.get('projectId', ref.project)}/jobs/{reference.get('jobId')}"
            async with self.session.get(url, params={"location": reference.get("location", "US")}) as response:
                job = await response.json(content_type=None)
        raise StorageError("DEADLINE_EXCEEDED", f"the load job into {ref} did not finish")
