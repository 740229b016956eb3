"""The Gemini Developer API case of the contract suite: add ``GEMINI_CASE`` to ``BACKEND_CASES``.

The backend is built inside the running event loop (google-genai binds its aiohttp session to the
loop that first uses it) against the emulator's root URL, with the official SDK unchanged. The
emulator counts Gemini requests under ``stats()["gemini"]``, keyed by the ``metadata.key`` /
``key`` the backend sends, which is the row's custom_id.
"""

from __future__ import annotations

from google import genai
from google.genai import types

from airflow_llm_batch.backends.gemini import GeminiBatchBackend
from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.pipeline.backend import BatchBackend
from tests.contract.conftest import BackendCase


def build_gemini(emulator: Emulator) -> BatchBackend:
    """A Gemini backend on ``emulator`` (small chunks go inline, as they would in production)."""
    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=emulator.url))
    return GeminiBatchBackend(client, create_retry_delays=(0.05,))


GEMINI_CASE = BackendCase("gemini", stats_key="gemini", model="gemini-2.5-flash", build=build_gemini)
