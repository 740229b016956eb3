"""Credentials from the official ``google_cloud_platform`` connection's fields, read by this package when
apache-airflow-providers-google is not installed (when it is, its ``GoogleBaseHook`` reads them).

Fields, in ``extra``, plain or with the older ``extra__google_cloud_platform__`` prefix (an empty value
is unset), as the Google provider defines them:

* ``project``: the project (wins over the key's own ``project_id``);
* ``key_path``: path of a service-account JSON key file, on every worker and triggerer;
* ``keyfile_dict``: the service-account JSON key itself (an object, or its text);
* ``credential_config_file``: a credential configuration (path, JSON text or object), e.g. workload
  identity federation (``external_account``), read by ``google.auth``;
* ``scope``: comma-separated OAuth scopes (default ``cloud-platform``);
* ``impersonation_chain``: a service account to impersonate, or a comma-separated chain whose last
  account is the target (short-lived tokens through the IAM Credentials API);
* ``is_anonymous``: no credentials at all;
* ``num_retries``: accepted and not used (the run engine decides what is retried).

At most one of ``key_path``, ``keyfile_dict``, ``credential_config_file``, ``is_anonymous``; none:
Application Default Credentials. The fields the provider reads through Google Secret Manager or an
external identity provider (:data:`NEEDS_PROVIDER`) are refused with a :class:`BadConnectionError`
naming the field. Errors and logs name fields and paths, never key material.

Example: ``connection_credentials("google_cloud_default", {"keyfile_dict": "{...}", "project": "p"})``
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from airflow_llm_batch.exceptions import BadConnectionError

log = logging.getLogger(__name__)

PREFIX = "extra__google_cloud_platform__"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: the official fields this package cannot honour without the Google provider: field -> what it is
NEEDS_PROVIDER: dict[str, str] = {
    "key_secret_name": "a key kept in Google Secret Manager",
    "key_secret_project_id": "the project of a key kept in Google Secret Manager",
    "idp_issuer_url": "an external identity provider (client credentials grant flow)",
    "client_id": "the client of an external identity provider",
    "client_secret": "the secret of an external identity provider's client",
    "idp_extra_params": "parameters for an external identity provider",
}
#: ways to authenticate; the Google provider takes at most one of them, and so does this package
KEY_SOURCES = ("key_path", "keyfile_dict", "credential_config_file", "is_anonymous")
#: every field of the official connection this module reads (the rest are Vertex/emulator settings)
OFFICIAL_FIELDS = frozenset({"project", "scope", "impersonation_chain", "num_retries", *KEY_SOURCES,
                             *NEEDS_PROVIDER})
_SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")
_FIX = "fix the connection, then clear the task"


def connection_field(extras: Mapping[str, Any], name: str) -> Any:
    """The field ``name`` (plain, else prefixed); None when unset or empty."""
    value = extras.get(name)
    if value is None or value == "":
        value = extras.get(PREFIX + name)
    return None if value == "" else value


def connection_credentials(conn_id: str, extras: Mapping[str, Any]) -> tuple[Any, str | None]:
    """(credentials, project) as the official connection's fields describe them; see the module doc."""
    refuse_provider_only_fields(conn_id, extras)
    scopes = parse_scopes(connection_field(extras, "scope"))
    credentials, project, source = _base_credentials(conn_id, extras, scopes)
    chain = _impersonation_chain(conn_id, connection_field(extras, "impersonation_chain"))
    if chain:
        from google.auth import impersonated_credentials

        credentials = impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
            source_credentials=credentials, target_principal=chain[-1], target_scopes=scopes,
            delegates=chain[:-1] or None)
        project = _project_of_account(chain[-1]) or project
        source = f"{source}, impersonating {chain[-1]}"
    project = connection_field(extras, "project") or connection_field(extras, "project_id") or project
    log.info("Google credentials of connection %r: %s (project %s)", conn_id, source, project or "-")
    return credentials, (str(project) if project else None)


def refuse_provider_only_fields(conn_id: str, extras: Mapping[str, Any]) -> None:
    """BadConnectionError for the first field only the Google provider's hook can honour."""
    for name, what in NEEDS_PROVIDER.items():
        if connection_field(extras, name):
            raise BadConnectionError(
                f"connection {conn_id!r}: extra {name!r} ({what}) needs apache-airflow-providers-google, whose "
                f"hook then supplies the credentials; install it, or authenticate with 'keyfile_dict', "
                f"'key_path' or 'credential_config_file' instead; {_FIX}")


def parse_scopes(value: Any) -> list[str]:
    """The ``scope`` field (comma-separated, as the Google provider reads it) -> scopes; cloud-platform if unset."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    scopes = [str(item).strip() for item in items if str(item).strip()]
    return scopes or [CLOUD_PLATFORM_SCOPE]


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _base_credentials(conn_id: str, extras: Mapping[str, Any], scopes: list[str]) -> tuple[Any, Any, str]:
    """(credentials, their project, a log-safe name of where they came from) before impersonation."""
    given = {name: connection_field(extras, name) for name in KEY_SOURCES}
    given["is_anonymous"] = _flag(given["is_anonymous"])
    chosen = [name for name, value in given.items() if value]
    if len(chosen) > 1:
        raise BadConnectionError(f"connection {conn_id!r}: extras {chosen} are each a way to authenticate and "
                                 f"exclude each other (as in the Google provider); keep one; {_FIX}")
    if not chosen:
        import google.auth

        credentials, project = google.auth.default(scopes=scopes)
        return credentials, project, "Application Default Credentials"
    name = chosen[0]
    credentials, project = _READERS[name](conn_id, given[name], scopes)
    return credentials, project, f"extra {name!r}"


def _anonymous(conn_id: str, value: Any, scopes: list[str]) -> tuple[Any, str | None]:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials(), None  # type: ignore[no-untyped-call]


def _from_key_path(conn_id: str, value: Any, scopes: list[str]) -> tuple[Any, str | None]:
    path = str(value)
    if path.endswith(".p12"):
        raise BadConnectionError(f"connection {conn_id!r}: extra 'key_path' names a legacy P12 key, which is not "
                                 f"supported; use a JSON service-account key; {_FIX}")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise BadConnectionError(f"connection {conn_id!r}: extra 'key_path': cannot read {path!r} on this machine "
                                 f"({type(exc).__name__}); the key file must be on every worker and triggerer, "
                                 f"or use 'keyfile_dict'; {_FIX}") from None
    return _service_account(conn_id, "key_path", _json_object(conn_id, "key_path", text), scopes)


def _from_keyfile_dict(conn_id: str, value: Any, scopes: list[str]) -> tuple[Any, str | None]:
    info = value if isinstance(value, Mapping) else _json_object(conn_id, "keyfile_dict", value)
    return _service_account(conn_id, "keyfile_dict", dict(info), scopes)


def _json_object(conn_id: str, field: str, text: Any) -> dict[str, Any]:
    """A JSON object read from ``text``; the error names the position, never the text (it holds a key)."""
    try:
        value = json.loads(str(text))
    except json.JSONDecodeError as exc:
        raise BadConnectionError(f"connection {conn_id!r}: extra {field!r} is not valid JSON (line {exc.lineno}, "
                                 f"column {exc.colno}); paste the JSON key as downloaded; {_FIX}") from None
    if not isinstance(value, dict):
        raise BadConnectionError(f"connection {conn_id!r}: extra {field!r} must hold a JSON object, not a "
                                 f"{type(value).__name__}; {_FIX}")
    return value


def _service_account(conn_id: str, field: str, info: dict[str, Any], scopes: list[str]) -> tuple[Any, str | None]:
    """Service-account credentials from a JSON key; errors name what is missing, never a value."""
    kind = info.get("type", "service_account")
    if kind != "service_account":
        raise BadConnectionError(f"connection {conn_id!r}: extra {field!r} holds a {kind!r} credential, not a "
                                 f"service-account key; put it in 'credential_config_file'; {_FIX}")
    missing = [name for name in _SERVICE_ACCOUNT_FIELDS if not info.get(name)]
    if missing:
        raise BadConnectionError(f"connection {conn_id!r}: extra {field!r} is not a complete service-account key "
                                 f"(missing {missing}); {_FIX}")
    from google.auth.exceptions import GoogleAuthError
    from google.oauth2 import service_account

    info = {**info, "private_key": str(info["private_key"]).replace("\\n", "\n")}  # escaped in some stores
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=scopes)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, IndexError, GoogleAuthError) as exc:
        raise BadConnectionError(f"connection {conn_id!r}: extra {field!r}: its private_key could not be read "
                                 f"({type(exc).__name__}); paste the service-account JSON key as downloaded; "
                                 f"{_FIX}") from None
    return credentials, credentials.project_id


def _from_config_file(conn_id: str, value: Any, scopes: list[str]) -> tuple[Any, str | None]:
    """A credential configuration (file, JSON text or object), read by google.auth as the provider does."""
    import google.auth
    from google.auth.credentials import with_scopes_if_required
    from google.auth.exceptions import GoogleAuthError

    is_path = isinstance(value, str) and os.path.exists(value)
    info = None if is_path else (value if isinstance(value, Mapping) else
                                 _json_object(conn_id, "credential_config_file", value))
    # loaded without scopes, then scoped: with scopes, google.auth asks the network for a workload identity
    # pool's project while loading; the connection's 'project' names it instead
    try:
        if info is None:
            credentials, project = google.auth.load_credentials_from_file(value)  # type: ignore[no-untyped-call]
        else:
            credentials, project = google.auth.load_credentials_from_dict(dict(info))  # type: ignore[no-untyped-call]
    except (ValueError, GoogleAuthError) as exc:
        where = f" ({value!r})" if is_path else ""
        raise BadConnectionError(f"connection {conn_id!r}: extra 'credential_config_file'{where} is not a credential "
                                 f"configuration google.auth can read ({type(exc).__name__}); check its 'type' "
                                 f"and fields; {_FIX}") from None
    return with_scopes_if_required(credentials, scopes), project  # type: ignore[no-untyped-call]


_READERS: dict[str, Callable[[str, Any, list[str]], tuple[Any, str | None]]] = {
    "is_anonymous": _anonymous, "key_path": _from_key_path, "keyfile_dict": _from_keyfile_dict,
    "credential_config_file": _from_config_file,
}


def _impersonation_chain(conn_id: str, value: Any) -> list[str]:
    """``a@p.iam.gserviceaccount.com`` or ``a@...,b@...`` (or a JSON list) -> accounts, target last."""
    if not value:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise BadConnectionError(f"connection {conn_id!r}: extra 'impersonation_chain' must be a service account "
                             f"e-mail or a comma-separated list of them; {_FIX}")


def _project_of_account(email: str) -> str | None:
    """``sa@my-project.iam.gserviceaccount.com`` -> ``my-project`` (as the Google provider does)."""
    domain = email.partition("@")[2]
    return domain.split(".")[0] if domain.endswith(".iam.gserviceaccount.com") else None
