"""``bq://`` URIs and the ``?name=value&...`` options any sink or source URI may carry.

Options ride in the URI because the operators take a templated string (``destination=``,
``rows=``): ``bq://proj.ds.triage?mode=append`` or ``gs://b/out.parquet?failures=separate``.
Values are percent-decoded (``%26`` is ``&``, ``%25`` is ``%``); ``+`` stays ``+``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from airflow_llm_batch.exceptions import InvalidInputError

_PROJECT = r"[a-z][a-z0-9.:-]{0,62}[a-z0-9]"
_DATASET = r"[A-Za-z0-9_]{1,1024}"
_TABLE = r"[\w$-]{1,1024}"
_TABLE_REF = re.compile(rf"^(?:(?P<project>{_PROJECT})\.)?(?P<dataset>{_DATASET})\.(?P<table>{_TABLE})$")
_PROJECT_ONLY = re.compile(rf"^(?P<project>{_PROJECT})?$")


def split_options(uri: str) -> tuple[str, dict[str, str]]:
    """``"gs://b/x.jsonl?failures=separate"`` -> ``("gs://b/x.jsonl", {"failures": "separate"})``."""
    base, sep, query = uri.partition("?")
    options: dict[str, str] = {}
    if not sep:
        return base, options
    for pair in query.split("&"):
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        if not eq:
            raise InvalidInputError(f"option {name!r} in {base!r} has no value (write name=value)")
        options[unquote(name).strip()] = unquote(value)
    return base, options


def encode_option(value: str) -> str:
    """Escape only what the option syntax needs (``%`` and ``&``), so SQL stays readable and Jinja works."""
    return quote(value, safe="".join(chr(c) for c in range(32, 127) if chr(c) not in "%&"))


def merge_options(from_uri: dict[str, str], given: dict[str, Any], *, where: str) -> dict[str, Any]:
    clash = sorted(set(from_uri) & {k for k, v in given.items() if v is not None})
    if clash:
        raise InvalidInputError(f"{where}: options {clash} are given both in the URI and as arguments")
    return {**from_uri, **{k: v for k, v in given.items() if v is not None}}


@dataclass(frozen=True)
class BigQueryRef:
    """A parsed ``bq://`` URI: a table (``bq://[project.]dataset.table``) or a query
    (``bq://[project]?query=SELECT...``), plus its options.

    Example: ``BigQueryRef.parse("bq://proj.support.triage?mode=append").table_id == "proj.support.triage"``
    """

    project: str | None
    dataset: str | None = None
    table: str | None = None
    query: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, uri: str) -> BigQueryRef:
        text = uri.strip()
        if not text.lower().startswith("bq://"):
            raise InvalidInputError(f"{uri!r} is not a bq:// URI")
        base, options = split_options(text[5:])
        query = options.pop("query", None)
        if query is not None:
            match = _PROJECT_ONLY.match(base)
            if not match or not query.strip():
                raise InvalidInputError(f"BigQuery query URI {uri!r}: write bq://PROJECT?query=SELECT... "
                                        f"(PROJECT runs the query; it may be omitted to use the connection's)")
            return cls(project=match["project"], query=query, options=options)
        match = _TABLE_REF.match(base)
        if not match:
            raise InvalidInputError(f"BigQuery URI {uri!r}: expected bq://project.dataset.table "
                                    f"(or bq://dataset.table with the connection's project)")
        return cls(project=match["project"], dataset=match["dataset"], table=match["table"], options=options)

    def with_project(self, project: str) -> BigQueryRef:
        return BigQueryRef(self.project or project, self.dataset, self.table, self.query, self.options)

    @property
    def table_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    def __str__(self) -> str:
        return f"bq://{self.table_id}" if self.table else f"bq://{self.project or ''}?query=..."


def bigquery_query_uri(sql: str, project: str | None = None, **options: Any) -> str:
    """A ``bq://`` rows URI for a query (only ``%`` and ``&`` are escaped, so Jinja still renders).

    Example: ``rows=bigquery_query_uri("SELECT * FROM `p.d.t` WHERE day = '{{ ds }}' ORDER BY id")``
    """
    extra = "".join(f"&{k}={encode_option(str(v))}" for k, v in options.items())
    return f"bq://{project or ''}?query={encode_option(sql)}{extra}"


def split_gs(uri: str) -> tuple[str, str]:
    """``"gs://bucket/a/b/"`` -> ``("bucket", "a/b")`` (the path without its trailing slash).

    Example: ``split_gs("gs://llm-batch/staging/t1/requests.jsonl") == ("llm-batch", "staging/t1/requests.jsonl")``
    """
    text = uri.strip()
    if not text.startswith("gs://"):
        raise InvalidInputError(f"{uri!r} is not a gs:// URI")
    bucket, _, path = text[5:].rstrip("/").partition("/")
    if not bucket:
        raise InvalidInputError(f"{uri!r}: expected gs://BUCKET[/PREFIX]")
    return bucket, path


@dataclass(frozen=True)
class GcsPrefix:
    """A folder in Cloud Storage, ``gs://bucket[/prefix]``.

    Example: ``GcsPrefix.parse("gs://b/llm").child("t1", "requests.jsonl") == "gs://b/llm/t1/requests.jsonl"``
    """

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, uri: str) -> GcsPrefix:
        return cls(*split_gs(uri))

    def child(self, *names: str) -> str:
        return "/".join(["gs:/", self.bucket, *[part for part in (self.prefix, *names) if part]])

    def __str__(self) -> str:
        return self.child()


@dataclass(frozen=True)
class BigQueryDataset:
    """A dataset, ``bq://project.dataset`` (or ``bq://dataset`` with a default project).

    Example: ``BigQueryDataset.parse("bq://p.ds").table_id("t") == "p.ds.t"``
    """

    project: str
    dataset: str

    @classmethod
    def parse(cls, uri: str, default_project: str | None = None) -> BigQueryDataset:
        text = uri.strip().rstrip("/")
        parts = text[5:].split(".") if text.lower().startswith("bq://") else []
        if len(parts) == 1 and default_project:
            parts = [default_project, *parts]
        if len(parts) != 2 or not all(parts):
            raise InvalidInputError(f"{uri!r}: expected bq://PROJECT.DATASET (a dataset, not a table)")
        return cls(parts[0], parts[1])

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def __str__(self) -> str:
        return f"bq://{self.project}.{self.dataset}"
