"""``abfs://conn_id@container/...`` without apache-airflow-providers-microsoft-azure: the option mapping of a
``wasb`` / ``adls`` connection onto adlfs (storage_connections/azure.py) and the refusals by name. Only the
mapping is tested: Azurite, the Azure Storage emulator, is not on PyPI; adlfs itself is built from the
options for real (no request is sent until a path is used)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from airflow.sdk.io import has_fs

from airflow_llm_batch.exceptions import BadConnectionError
from airflow_llm_batch.storage_connections.azure import azure_options

pytestmark = pytest.mark.skipif(has_fs("abfs"),
                                reason="with the Azure provider installed, its filesystem reads the connection")

KEY = "c2VjcmV0LWFjY291bnQta2V5LW5ldmVyLWxvZ2dlZA=="


@pytest.mark.parametrize("conn_type, host, login, password, extra, expected", [
    ("wasb", None, "acct", KEY, {}, {"account_name": "acct", "account_key": KEY}),
    ("wasb", "https://other.blob.core.windows.net", "acct", KEY, {}, {"account_name": "other", "account_key": KEY}),
    ("adls", "lake", "client-id", "client-secret", {"tenant_id": "t"},
     {"account_name": "lake", "tenant_id": "t", "client_id": "client-id", "client_secret": "client-secret"}),
    ("wasb", None, "acct", None, {"extra__wasb__sas_token": "sv=1&sig=x"},
     {"account_name": "acct", "sas_token": "sv=1&sig=x"}),
    ("wasb", None, "acct", KEY, {"connection_string": "DefaultEndpointsProtocol=https;AccountName=a"},
     {"connection_string": "DefaultEndpointsProtocol=https;AccountName=a"}),
    ("wasb", None, "acct", None, {"anon": "true", "account_host": "acct.blob.example.test"},
     {"account_name": "acct", "anon": True, "account_host": "acct.blob.example.test"}),
    ("adls", None, "acct", None, {"tenant_id": "t", "client_id": "cid", "client_secret": "cs"},
     {"account_name": "acct", "tenant_id": "t", "client_id": "cid", "client_secret": "cs"}),
])
def test_the_official_connection_fields_map_onto_adlfs_options(conn_type: str, host: str | None, login: str | None,
                                                               password: str | None, extra: dict[str, Any],
                                                               expected: dict[str, Any]) -> None:
    assert azure_options("lake", conn_type, host, login, password, extra) == expected


@pytest.mark.parametrize("extra, named", [
    ({"managed_identity_client_id": "m"}, "managed_identity_client_id"),
    ({"extra__wasb__workload_identity_tenant_id": "w"}, "workload_identity_tenant_id"),
    ({"client_secret_auth_config": {"authority": "x"}}, "client_secret_auth_config"),
    ({"proxies": {"https": "p"}}, "proxies"),
])
def test_fields_that_cannot_be_honoured_are_refused_by_name(extra: dict[str, Any], named: str) -> None:
    with pytest.raises(BadConnectionError, match=named) as failure:
        azure_options("lake", "wasb", None, "acct", KEY, extra)
    assert KEY not in str(failure.value)


def test_a_connection_of_another_type_is_refused() -> None:
    with pytest.raises(BadConnectionError, match="'wasb' or 'adls'"):
        azure_options("lake", "aws", None, "acct", KEY, {})


def test_an_abfs_path_gets_an_adlfs_filesystem_built_from_the_connection() -> None:
    from airflow.sdk import ObjectStoragePath

    from airflow_llm_batch.sources.rows import to_path

    os.environ["AIRFLOW_CONN_AZ_LAKE"] = json.dumps({"conn_type": "wasb", "login": "acct", "password": KEY})
    path = to_path("abfs://az_lake@container/ws")
    assert type(path.fs).__name__ == "AzureBlobFileSystem"
    assert path.fs.account_name == "acct" and path.fs.account_key == KEY
    assert ObjectStoragePath("abfs://az_lake@container/ws/x").fs is path.fs
