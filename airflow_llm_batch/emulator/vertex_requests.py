"""What the emulated Vertex AI accepts: batch prediction job create calls, list filters, and its
Google-shaped errors (``{"error": {"code", "message", "status"}}``).

A create call is validated the way the service does before anything exists: a display name (at most
128 characters), a publisher model or model resource, exactly one input (``gcsSource.uris`` of
``gs://`` URIs, or ``bigquerySource.inputUri`` naming a table) and one output
(``gcsDestination.outputUriPrefix`` or ``bigqueryDestination.outputUri``), and labels in label syntax
(keys start with a lowercase letter; keys and values hold lowercase letters, digits, ``_`` and ``-``,
at most 63 characters). List filters are terms joined by ``AND``: ``display_name``, ``state``,
``model`` and ``labels.KEY`` with ``=``, ``!=`` or ``:`` (``:*`` = has the label), ``create_time``
with comparisons against an RFC 3339 time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .state import ApiError

if TYPE_CHECKING:
    from .vertex_jobs import VertexJob

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_MODEL = re.compile(r"^(publishers/[^/]+/models/[^/]+|projects/[^/]+/locations/[^/]+/(models|endpoints)/[^/]+)$")

class VertexError(ApiError):
    """A Google-shaped error answer: ``{"error": {"code", "message", "status"}}``."""

    def __init__(self, status: int, message: str, canonical: str | None = None) -> None:
        super().__init__(status, message)
        self.canonical = canonical or canonical_for_http(status)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.status, "message": self.message, "status": self.canonical}}


def canonical_for_http(status: int) -> str:
    return {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
            409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
            504: "DEADLINE_EXCEEDED"}.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")


def _invalid(message: str) -> VertexError:
    return VertexError(400, message, "INVALID_ARGUMENT")


def _one_of(config: Any, where: str, options: dict[str, str]) -> tuple[str, Any]:
    """The single set source/destination of ``config``: (option name, its URI value)."""
    if not isinstance(config, Mapping):
        raise _invalid(f"{where} is required.")
    found = [(name, config.get(name)) for name in options if config.get(name)]
    if len(found) != 1:
        raise _invalid(f"{where}: exactly one of {sorted(options)} must be set.")
    name, value = found[0]
    uri = value.get(options[name]) if isinstance(value, Mapping) else None
    if not uri:
        raise _invalid(f"{where}.{name}.{options[name]} is required.")
    return name, uri


def _check_labels(labels: Any) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping) or len(labels) > 64:
        raise _invalid("labels: at most 64 string pairs.")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise _invalid(f"labels: key {key!r} must start with a lowercase letter and hold only lowercase "
                           f"letters, digits, '_' and '-' (at most 63).")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise _invalid(f"labels: value {value!r} of {key!r} may hold only lowercase letters, digits, '_' "
                           f"and '-' (at most 63).")
    return dict(labels)


def validate_create(payload: Any) -> dict[str, Any]:
    """The fields of a valid create call; VertexError 400 on the first problem."""
    if not isinstance(payload, Mapping):
        raise _invalid("The request body must be a BatchPredictionJob object.")
    display_name = payload.get("displayName") or payload.get("display_name")
    if not isinstance(display_name, str) or not display_name.strip():
        raise _invalid("displayName is required.")
    if len(display_name) > 128:
        raise _invalid("displayName must be at most 128 characters.")
    model_name = payload.get("model")
    if not isinstance(model_name, str) or not _MODEL.match(model_name):
        raise _invalid(f"model {model_name!r} is not a publisher model (publishers/*/models/*) or a model resource.")
    input_config = payload.get("inputConfig") or payload.get("input_config")
    source, uri = _one_of(input_config, "inputConfig", {"gcsSource": "uris", "bigquerySource": "inputUri"})
    if source == "gcsSource":
        uris = uri if isinstance(uri, list) else [uri]
        if not all(isinstance(u, str) and u.startswith("gs://") for u in uris):
            raise _invalid("inputConfig.gcsSource.uris must be gs:// URIs.")
    elif not (isinstance(uri, str) and uri.startswith("bq://") and uri.count(".") == 2):
        raise _invalid("inputConfig.bigquerySource.inputUri must be bq://project.dataset.table.")
    output_config = payload.get("outputConfig") or payload.get("output_config")
    destination, out_uri = _one_of(output_config, "outputConfig",
                                   {"gcsDestination": "outputUriPrefix", "bigqueryDestination": "outputUri"})
    prefix = "gs://" if destination == "gcsDestination" else "bq://"
    if not isinstance(out_uri, str) or not out_uri.startswith(prefix):
        raise _invalid(f"outputConfig.{destination} must be a {prefix} URI.")
    return {"display_name": display_name, "model": model_name, "labels": _check_labels(payload.get("labels")),
            "input_config": dict(input_config or {}), "output_config": dict(output_config or {})}


# -- list filters ---------------------------------------------------------------------------------------
_TERM = re.compile(r'^\s*(?P<field>display_name|state|create_time|model|labels\.[a-z][a-z0-9_-]*)\s*'
                   r'(?P<op>!=|>=|<=|=|>|<|:)\s*(?P<value>"[^"]*"|\S+)\s*$')


def _parse_time(text: str) -> float:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise _invalid(f"filter: {text!r} is not an RFC 3339 time.") from exc


def job_filter(expression: str) -> Callable[[VertexJob], bool]:
    """A predicate for ``filter`` (terms joined by ``AND``: ``display_name``, ``state``, ``model``,
    ``labels.KEY`` with ``=``/``!=``/``:``; ``create_time`` with comparisons)."""
    checks = []
    for term in re.split(r"\s+AND\s+", expression.strip()) if expression.strip() else []:
        match = _TERM.match(term)
        if not match:
            raise _invalid(f"filter: unsupported expression {term!r}.")
        name, op, value = match["field"], match["op"], match["value"].strip('"')
        checks.append((name, op, value))

    def accept(job: VertexJob) -> bool:
        for name, op, value in checks:
            if name == "create_time":
                moment, wanted = job.created, _parse_time(value)
                ok = {"=": moment == wanted, "!=": moment != wanted, ">": moment > wanted, ">=": moment >= wanted,
                      "<": moment < wanted, "<=": moment <= wanted}.get(op, False)
            else:
                actual = (job.labels.get(name[7:]) if name.startswith("labels.") else
                          {"display_name": job.display_name, "state": job.state, "model": job.model}[name])
                if op == ":":
                    ok = actual is not None if value == "*" else actual is not None and value.rstrip("*") in actual
                elif op in ("=", "!="):
                    ok = (actual == value) == (op == "=")
                else:
                    raise _invalid(f"filter: {name} does not support {op!r}.")
            if not ok:
                return False
        return True

    return accept


