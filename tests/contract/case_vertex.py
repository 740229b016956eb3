"""The Vertex AI case of the backend contract suite.

Its jobs stage chunks in, and write answers to, the GCS emulator, so the case needs the session's
``gcs_emulator``: the ``vertex_contract_storage`` fixture creates a bucket there and hands its
endpoint to :data:`VERTEX_CASE`, which points each emulator it builds a backend for at it
(``set_vertex_storage``). Wiring, in ``tests/contract/conftest.py``::

    from tests.contract.case_vertex import VERTEX_CASE, vertex_contract_storage  # noqa: E402,F401
    from tests.gcp.fixtures import gcs_emulator  # noqa: E402,F401

    BACKEND_CASES.append(VERTEX_CASE)

    @pytest.fixture(params=BACKEND_CASES, ids=str)
    def case(request):
        for name in getattr(request.param, "fixtures", ()):  # the Vertex case needs the GCS emulator
            request.getfixturevalue(name)
        return request.param

Per-row errors come back with the retry policy's codes (``INVALID_ARGUMENT`` ->
``invalid_request_error``, ``INTERNAL`` -> ``server_error``), so the suite's assertions hold as
written; keys are passthrough fields, so any key comes back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from google.genai import Client, types
from google.oauth2.credentials import Credentials

from airflow_llm_batch.backends.vertex import VertexBatchBackend
from airflow_llm_batch.backends.vertex_staging import GoogleClients, VertexStaging
from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.emulator.vertex_api import set_vertex_storage
from airflow_llm_batch.google.emulators import LocalGcs
from airflow_llm_batch.google.settings import GoogleSettings
from airflow_llm_batch.pipeline.backend import BatchBackend
from tests.contract.conftest import BackendCase
from tests.gcp.fixtures import unique_name

PROJECT, LOCATION = "test-project", "us-central1"


@dataclass
class _Storage:
    """The GCS emulator endpoint and bucket the case stages into (set by ``vertex_contract_storage``)."""

    endpoint: str | None = None
    bucket: str | None = None

    def require(self) -> tuple[str, str]:
        if not self.endpoint or not self.bucket:
            raise RuntimeError("the Vertex contract case needs the vertex_contract_storage fixture (see "
                               "tests/contract/case_vertex.py)")
        return self.endpoint, self.bucket


STORAGE = _Storage()


@pytest.fixture(scope="session")
def vertex_contract_storage(gcs_emulator: LocalGcs) -> Iterator[_Storage]:
    """A bucket in the GCS emulator for the session's Vertex contract runs."""
    bucket = gcs_emulator.client().create_bucket(unique_name("contract").replace("_", "-"))
    STORAGE.endpoint, STORAGE.bucket = gcs_emulator.endpoint, bucket.name
    try:
        yield STORAGE
    finally:
        STORAGE.endpoint = STORAGE.bucket = None


def _vertex(emulator: Emulator) -> BatchBackend:
    endpoint, bucket = STORAGE.require()
    set_vertex_storage(emulator.url, gcs_endpoint=endpoint)  # a loopback call to the emulator's thread
    client = Client(vertexai=True, project=PROJECT, location=LOCATION, credentials=Credentials(token="fake"),  # type: ignore[no-untyped-call]
                    http_options=types.HttpOptions(base_url=emulator.url,
                                                   retry_options=types.HttpRetryOptions(attempts=1)))
    settings = GoogleSettings(conn_id=None, project=PROJECT, storage_endpoint=endpoint)
    return VertexBatchBackend(client, staging=VertexStaging.parse(f"gs://{bucket}/contract", None, PROJECT),
                              clients=GoogleClients(settings, PROJECT), create_retry_delays=(0.05,))


@dataclass(frozen=True)
class VertexBackendCase(BackendCase):
    """A case that needs fixtures beyond the emulator (requested by name before the case is used)."""

    fixtures: tuple[str, ...] = field(default=())


VERTEX_CASE = VertexBackendCase("vertex", stats_key="vertex", model="gemini-2.5-flash", build=_vertex,
                                fixtures=("vertex_contract_storage",))

__all__ = ["VERTEX_CASE", "VertexBackendCase", "vertex_contract_storage"]
