"""``EmulatorConfig(batch_api=False)`` (``--no-batch-api``): the emulator is an OpenAI-compatible server
without a batch API, as vLLM, Ollama or TGI are: the file and batch routes answer 404, the real-time
routes answer. Driven with the official SDK over HTTP; counted on the emulator's side."""

from __future__ import annotations

import io
from collections.abc import Callable

import openai
import pytest

from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.emulator.cli import build_parser


def _client(emu: Emulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)


def test_file_and_batch_routes_answer_404_and_create_nothing(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(batch_api=False)
    client = _client(emu)
    with pytest.raises(openai.NotFoundError):
        client.batches.list(limit=1)
    with pytest.raises(openai.NotFoundError):
        client.files.create(file=("in.jsonl", io.BytesIO(b"{}\n"), "application/jsonl"), purpose="batch")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_x")
    azure = openai.AzureOpenAI(azure_endpoint=emu.url, api_key="k", api_version="2024-10-21", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        azure.batches.list(limit=1)
    stats = emu.stats()["openai"]
    assert stats["batches_created"] == 0 and stats["files_uploaded"] == 0
    assert stats["api_requests"] == 5  # each call reached the emulator once and was refused


def test_real_time_routes_still_answer(start_emulator: Callable[..., Emulator]) -> None:
    emu = start_emulator(batch_api=False)
    client = _client(emu)
    chat = client.chat.completions.create(model="llama-3.1-8b", messages=[{"role": "user", "content": "hello"}])
    assert chat.choices[0].message.content == "hello"
    assert client.responses.create(model="llama-3.1-8b", input="there").output_text == "there"
    assert client.embeddings.create(model="nomic-embed-text", input="x").data[0].embedding
    assert emu.stats()["realtime"]["answered"] == 3


def test_the_normal_emulator_still_lists_batches(emulator: Emulator) -> None:
    assert _client(emulator).batches.list(limit=1).data is not None


def test_command_line_flag() -> None:
    assert build_parser().parse_args(["--no-batch-api"]).batch_api is False
    assert build_parser().parse_args([]).batch_api is True
    args = build_parser().parse_args(["--realtime-latency-seconds", "0.05", "--realtime-max-concurrency", "8"])
    assert (args.realtime_latency_seconds, args.realtime_max_concurrency) == (0.05, 8)
