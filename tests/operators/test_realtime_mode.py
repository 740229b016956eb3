"""``mode="realtime"`` and ``mode="auto"`` in real Airflow (dag.test()) against the bundled emulator,
counted on the emulator's side: each row joined to its own answer for every provider with no batch
created; 2,000 rows against a server capped at 8 requests in flight refusing 20% of first sends, each
body paid once; Gemini rows sent as plain HTTP, never through the SDK; a try stopped by a circuit breaker
resumes and sends only the unanswered rows; auto picks real-time for 50 rows and batch for 5,000; a dry
run shows the decision and sends nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from tests.airflow_helpers import run_dag, task_states, xcom

pytestmark = pytest.mark.usefixtures("airflow_db")

FAST = EmulatorConfig(validating_seconds=0.1, requests_per_second=20_000.0, finalizing_seconds=0.1)
CAPPED = FAST.replace(realtime_max_concurrency=8, realtime_429_rate=0.2, realtime_latency_seconds=0.005)
CONN_TYPES = {"openai": "llm_batch_openai", "azure_openai": "llm_batch_azure_openai",
              "anthropic": "llm_batch_anthropic", "gemini": "llm_batch_gemini", "vertex": "llm_batch_vertex"}


def connection(provider: str, emu: Emulator) -> dict[str, Any]:
    from airflow_llm_batch.hooks import hook_class

    conn_type = hook_class(provider).conn_type
    if provider == "vertex":
        return {"conn_type": conn_type, "extra": {"project": "p1", "vertex_endpoint": emu.url,
                                                  "vertex_staging_uri": "gs://unused/staging"}}
    host = {"openai": emu.openai_base_url, "anthropic": emu.anthropic_base_url}.get(provider, emu.url)
    return {"conn_type": conn_type, "password": "k", "host": host}


@pytest.fixture(scope="module")
def emus() -> Iterator[dict[str, Emulator]]:
    """A fast emulator and a capped one, each with an ``rt_*`` connection per provider."""
    import os

    started = {"fast": Emulator(FAST), "capped": Emulator(CAPPED)}
    names = []
    for label, emu in started.items():
        emu.start()
        for provider in CONN_TYPES:
            name = f"AIRFLOW_CONN_RT_{provider.upper()}" + ("_CAPPED" if label == "capped" else "")
            os.environ[name] = json.dumps(connection(provider, emu))
            names.append(name)
    try:
        yield started
    finally:
        for name in names:
            os.environ.pop(name, None)
        for emu in started.values():
            emu.stop()


def rows_file(path: Path, count: int, prefix: str) -> str:
    path.write_text("".join(json.dumps({"id": f"{prefix}-{i:05d}", "text": f"{prefix} question {i}"}) + "\n"
                            for i in range(count)))
    return f"file://{path}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def conf(tmp_path: Path, rows: str, conn_id: str, **extra: Any) -> dict[str, Any]:
    return {"rows": rows, "destination": f"file://{tmp_path}/out.jsonl", "workspace": f"file://{tmp_path}/ws",
            "conn_id": conn_id, **extra}


def batches_created(emu: Emulator) -> int:
    return sum(int(emu.stats()[p]["batches_created"]) for p in ("openai", "anthropic", "gemini", "vertex"))


@pytest.mark.parametrize("provider", sorted(CONN_TYPES))
def test_each_provider_answers_each_row_in_real_time(provider: str, emus: dict[str, Emulator],
                                                     tmp_path: Path) -> None:
    emu = emus["fast"]
    emu.reset_stats()
    run = run_dag(f"llmb_rt_{provider}", conf(tmp_path, rows_file(tmp_path / "in.jsonl", 30, provider),
                                               f"rt_{provider}"))
    assert task_states(run) == {"answer": "success"}
    results = read_jsonl(tmp_path / "out.jsonl")
    assert len(results) == 30
    for row in results:  # the emulator echoes the prompt: each row holds its own answer
        assert row["status"] == "succeeded" and row["answered_by"] == "realtime"
        assert row["output"] == f"{provider} question {int(row['key'].rsplit('-', 1)[1])}"
    stats = emu.stats()
    assert batches_created(emu) == 0
    assert stats["realtime"]["answered"] == 30 and stats["realtime"]["bodies_paid_twice"] == 0
    summary = xcom(run, "answer")
    assert summary["rows_by_path"] == {"batch": 0, "realtime": 30, "cache": 0}
    assert summary["mode"]["mode"] == "realtime" and summary["batch_ids"] == []


def test_gemini_rows_go_out_on_the_raw_path_not_through_the_sdk(emus: dict[str, Emulator], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A Gemini connection with an API key sends its real-time rows as plain HTTP (backends/realtime_google.py
    ``send_raw``): the SDK's ``generate_content`` is never called, and each row still gets its own answer."""
    from google.genai.models import AsyncModels

    sdk_calls: list[str] = []

    async def no_sdk(self: AsyncModels, **kwargs: Any) -> Any:
        sdk_calls.append(str(kwargs.get("model")))
        raise AssertionError("the SDK was asked to send a real-time row")

    monkeypatch.setattr(AsyncModels, "generate_content", no_sdk)
    emu = emus["fast"]
    emu.reset_stats()
    run = run_dag("llmb_rt_gemini", conf(tmp_path, rows_file(tmp_path / "in.jsonl", 25, "graw"), "rt_gemini"))
    assert task_states(run) == {"answer": "success"} and sdk_calls == []
    results = read_jsonl(tmp_path / "out.jsonl")
    assert {row["key"]: row["output"] for row in results} == {f"graw-{i:05d}": f"graw question {i}" for i in range(25)}
    assert emu.stats()["realtime"]["answered_by_custom_id"] == {f"graw-{i:05d}": 1 for i in range(25)}


def test_2000_rows_against_8_in_flight_and_20_percent_429s_are_each_paid_once(emus: dict[str, Emulator],
                                                                             tmp_path: Path) -> None:
    emu = emus["capped"]
    emu.reset_stats()
    run = run_dag("llmb_rt_capped", conf(tmp_path, rows_file(tmp_path / "in.jsonl", 2000, "cap"),
                                         "rt_openai_capped"))
    assert task_states(run) == {"answer": "success"}
    results = read_jsonl(tmp_path / "out.jsonl")
    assert len(results) == 2000 and {r["status"] for r in results} == {"succeeded"}
    assert all(r["output"] == f"cap question {int(r['key'][4:])}" for r in results)
    stats = emu.stats()["realtime"]
    assert stats["injected_429"] > 0 and stats["peak_in_flight"] <= 8
    assert stats["answered"] == 2000  # the counter counts (it can fail) before "none twice" is trusted
    assert len(stats["answered_by_body"]) == 2000 and stats["bodies_paid_twice"] == 0
    assert batches_created(emu) == 0


def test_a_stopped_try_resumes_and_sends_only_the_unanswered_rows(emus: dict[str, Emulator],
                                                                tmp_path: Path) -> None:
    """Try 1 is stopped by a systemic refusal (401) after at least 50 answers; try 2 (the task's retry)
    sends only the rows try 1 left: the emulator answers 600 in all, none twice."""
    emu = emus["capped"]
    emu.reset_stats()
    stop = threading.Event()

    def refuse_once_50_are_answered() -> None:
        while not stop.is_set():
            if emu.stats()["realtime"]["answered"] >= 50:
                emu.inject_fault(401, count=1, path_prefix="/v1/chat/completions")
                return
            stop.wait(0.01)

    watcher = threading.Thread(target=refuse_once_50_are_answered)
    watcher.start()
    try:
        run = run_dag("llmb_rt_resume", conf(tmp_path, rows_file(tmp_path / "in.jsonl", 600, "res"),
                                             "rt_openai_capped"))
    finally:
        stop.set()
        watcher.join()
    assert task_states(run) == {"answer": "success"}
    assert run.get_task_instances()[0].try_number == 2
    logs = sorted((tmp_path / "ws").rglob("answers-*.jsonl"))
    first_try = len(logs[0].read_text().splitlines())
    assert len(logs) == 2 and 50 <= first_try < 600  # try 1 answered some rows, then stopped
    assert len(logs[1].read_text().splitlines()) == 600 - first_try  # try 2 sent only the rest
    stats = emu.stats()["realtime"]
    assert stats["answered"] == 600 and stats["bodies_paid_twice"] == 0
    assert stats["answered_by_custom_id"] == {f"res-{i:05d}": 1 for i in range(600)}
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 600


@pytest.mark.parametrize(("rows", "mode"), [(50, "realtime"), (5000, "batch")])
def test_auto_picks_realtime_for_50_rows_and_batch_for_5000(rows: int, mode: str, emus: dict[str, Emulator],
                                                            tmp_path: Path) -> None:
    emu = emus["fast"]
    emu.reset_stats()
    run = run_dag("llmb_rt_auto", conf(tmp_path, rows_file(tmp_path / "in.jsonl", rows, f"auto{rows}"),
                                       "rt_openai"))
    assert task_states(run) == {"answer": "success"}
    summary = xcom(run, "answer")
    assert summary["mode"]["mode"] == mode and summary["mode"]["rows"] == rows
    assert summary["mode"]["batch_usd"] < summary["mode"]["realtime_usd"]  # the money at stake
    chat_calls = emu.stats()["realtime"]["requests"]
    if mode == "realtime":
        assert chat_calls == rows and batches_created(emu) == 0
        assert summary["cost"]["realtime_paid_usd"] > 0 and summary["cost"]["saving_usd"] == 0
    else:
        assert chat_calls == 0 and batches_created(emu) >= 1
        assert summary["rows_by_path"]["batch"] == rows
    assert {r["answered_by"] for r in read_jsonl(tmp_path / "out.jsonl")} == {mode}


def test_a_dry_run_shows_the_auto_decision_and_sends_nothing(emus: dict[str, Emulator], tmp_path: Path) -> None:
    emu = emus["fast"]
    emu.reset_stats()
    run = run_dag("llmb_rt_auto_dry", conf(tmp_path, rows_file(tmp_path / "in.jsonl", 20, "dry"), "rt_openai"))
    assert task_states(run) == {"answer": "success"}
    summary = xcom(run, "answer")
    assert summary["dry_run"] is True
    assert summary["mode"]["mode"] == "realtime" and "fewer than 100 rows" in summary["mode"]["reason"]
    assert emu.stats()["realtime"]["requests"] == 0 and batches_created(emu) == 0


def test_a_bad_mode_fails_when_the_dag_is_parsed() -> None:
    from airflow_llm_batch.operators import LLMBatchOperator

    with pytest.raises(ValueError, match="mode='fast'"):
        LLMBatchOperator(task_id="t", model="m", rows=[], prompt="p", mode="fast")


def test_the_decorator_passes_mode_through(emus: dict[str, Emulator], tmp_path: Path) -> None:
    emu = emus["fast"]
    emu.reset_stats()
    run = run_dag("llmb_rt_decorated", {"workspace": f"file://{tmp_path}/ws"})
    assert task_states(run) == {"computed_rows": "success"}
    summary = xcom(run, "computed_rows")
    assert {r["key"]: (r["output"], r["answered_by"]) for r in summary["results"]} == {
        f"d{i}": (f"Say decorated {i}", "realtime") for i in range(5)}
    assert emu.stats()["realtime"]["answered"] == 5 and batches_created(emu) == 0


def test_bad_realtime_settings_fail_when_the_dag_is_parsed_and_templates_wait_for_the_run() -> None:
    from airflow_llm_batch.operators import LLMBatchOperator

    with pytest.raises(ValueError, match="deadline='tomorrow'"):
        LLMBatchOperator(task_id="t", model="m", rows=[], prompt="p", mode="auto", deadline="tomorrow")
    with pytest.raises(ValueError, match="max_concurrency=0"):
        LLMBatchOperator(task_id="t", model="m", rows=[], prompt="p", mode="realtime", max_concurrency=0)
    op = LLMBatchOperator(task_id="t", model="m", rows=[], prompt="p", mode="{{ params.mode }}",
                          deadline="{{ params.deadline }}")
    assert op.mode == "{{ params.mode }}" and "mode" in op.template_fields and "deadline" in op.template_fields
