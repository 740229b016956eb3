"""The backends the contract suite runs against. Adding a provider is one entry in ``BACKEND_CASES``.

A case builds its backend against an emulator inside the running event loop (SDK clients bind to
the loop that first uses them) and names the emulator's statistics section that counts its
requests. Every backend built by a test is closed when the test ends; every emulator a fixture
starts is stopped by it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from airflow_llm_batch.backends.anthropic import AnthropicBatchBackend
from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.pipeline.backend import BatchBackend


@dataclass(frozen=True)
class BackendCase:
    """How to reach one provider's batch API on the emulator."""

    name: str
    stats_key: str
    model: str
    build: Callable[[Emulator], BatchBackend]

    def __str__(self) -> str:
        return self.name


def _openai(emulator: Emulator) -> BatchBackend:
    client = AsyncOpenAI(base_url=emulator.openai_base_url, api_key="test-key", max_retries=0)
    return OpenAIBatchBackend(client)


def _anthropic(emulator: Emulator) -> BatchBackend:
    client = AsyncAnthropic(base_url=emulator.anthropic_base_url, api_key="test-key", max_retries=0)
    return AnthropicBatchBackend(client, create_retry_delays=(0.05,))


BACKEND_CASES = [
    BackendCase("openai", stats_key="openai", model="gpt-4o-mini", build=_openai),
    BackendCase("anthropic", stats_key="anthropic", model="claude-haiku-4-5", build=_anthropic),
]

# cases living in their own modules import BackendCase from here, so they are added after it exists
from tests.contract.case_gemini import GEMINI_CASE  # noqa: E402
from tests.contract.case_vertex import VERTEX_CASE, vertex_contract_storage  # noqa: E402,F401
from tests.gcp.fixtures import gcs_emulator  # noqa: E402,F401

BACKEND_CASES += [GEMINI_CASE, VERTEX_CASE]


@pytest.fixture(params=BACKEND_CASES, ids=str)
def case(request: pytest.FixtureRequest) -> BackendCase:
    for name in getattr(request.param, "fixtures", ()):  # e.g. Vertex needs the GCS emulator
        request.getfixturevalue(name)
    return request.param  # type: ignore[no-any-return]


class Backends:
    """Builds backends of one case in the running event loop and closes them all at the end."""

    def __init__(self, case: BackendCase) -> None:
        self.case = case
        self.built: list[BatchBackend] = []

    def build(self, emulator: Emulator) -> BatchBackend:
        backend = self.case.build(emulator)
        self.built.append(backend)
        return backend

    async def aclose(self) -> None:
        for backend in self.built:
            await backend.aclose()


@pytest.fixture
async def backends(case: BackendCase) -> AsyncIterator[Backends]:
    made = Backends(case)
    yield made
    await made.aclose()


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[Emulator]:
    """100 requests per second: a batch of a few hundred rows runs for seconds, long enough to cancel."""
    with Emulator(EmulatorConfig(validating_seconds=0.05, requests_per_second=100.0, finalizing_seconds=0.05,
                                 cancelling_seconds=0.05)) as emu:
        yield emu


@pytest.fixture
def private_emulator() -> Iterator[Emulator]:
    """A fast emulator holding only this test's batches (an account nobody else uses)."""
    with Emulator(EmulatorConfig(validating_seconds=0.02, requests_per_second=20_000.0,
                                 finalizing_seconds=0.02, cancelling_seconds=0.02)) as emu:
        yield emu
