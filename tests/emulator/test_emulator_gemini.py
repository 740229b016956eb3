"""The official google-genai SDK (sync and async), unchanged, against the emulated Gemini Developer API
batch mode: inline and file batches, Files API uploads and downloads, list, cancel, delete, shuffled
answers, per-row errors inside a SUCCEEDED batch, JSON schemas, API key and both API versions."""

from __future__ import annotations

import asyncio
import enum
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel, Field

from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.emulator.faults import FaultPlan

KEY = "test-key"
MODEL = "gemini-2.5-flash"
FAST = EmulatorConfig(validating_seconds=0.05, requests_per_second=5000.0, finalizing_seconds=0.05,
                      cancelling_seconds=0.05, api_key=KEY)


class Level(str, enum.Enum):
    LOW = "low"
    HIGH = "high"


class Triage(BaseModel):
    summary: str = Field(max_length=40)
    level: Level
    score: int = Field(ge=1, le=9)
    tags: list[str]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """An emulator that demands the API key (Gemini clients send it as x-goog-api-key)."""
    with Emulator(FAST) as emulator:
        yield emulator


def connect(emulator: Emulator, *, api_key: str = KEY, api_version: str | None = None) -> genai.Client:
    options = types.HttpOptions(base_url=emulator.url, api_version=api_version)
    return genai.Client(api_key=api_key, http_options=options)


@pytest.fixture(scope="module")
def gemini(emu: Emulator) -> Iterator[genai.Client]:
    client = connect(emu)
    yield client
    client.close()


def inline(key: str, text: str, **config: Any) -> types.InlinedRequestDict:
    request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}], "metadata": {"key": key}}
    if config:
        request["config"] = config
    return cast(types.InlinedRequestDict, request)


def jsonl_lines(rows: dict[str, str], **request: Any) -> bytes:
    return b"".join(json.dumps({"key": key, "request": {"contents": [{"role": "user", "parts": [{"text": text}]}],
                                                        **request}}).encode() + b"\n"
                    for key, text in rows.items())


def wait(client: genai.Client, name: str, timeout: float = 20.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        if job.done or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


async def wait_async(client: genai.Client, name: str, timeout: float = 20.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while True:
        job = await client.aio.batches.get(name=name)
        if job.done or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.02)


def raw(emulator: Emulator, path: str, version: str = "v1beta") -> dict[str, Any]:
    """The wire JSON (google-genai drops ``batchStats`` and the operation's ``error``)."""
    response = httpx.get(f"{emulator.url}/{version}/{path}", headers={"x-goog-api-key": KEY})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def by_key(job: types.BatchJob) -> dict[str, types.InlinedResponse]:
    assert job.dest is not None and job.dest.inlined_responses is not None
    return {str((r.metadata or {})["key"]): r for r in job.dest.inlined_responses}


def stats(emulator: Emulator) -> dict[str, Any]:
    section: dict[str, Any] = emulator.stats()["gemini"]
    return section


# -- inline batches --------------------------------------------------------------------------------
def test_inline_batch_runs_pending_running_succeeded_with_shuffled_keyed_answers(
    gemini: genai.Client, emu: Emulator
) -> None:
    before = stats(emu)
    keys = [f"inline-{i:03d}" for i in range(40)]
    job = gemini.batches.create(model=MODEL, src=[inline(k, f"echo {k}") for k in keys],
                                config={"display_name": "inline-run"})
    assert job.name is not None and job.name.startswith("batches/")
    assert job.state == types.JobState.JOB_STATE_PENDING and job.display_name == "inline-run"
    assert job.model == f"models/{MODEL}" and job.create_time is not None and job.dest is None
    job = wait(gemini, job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None and job.dest.inlined_responses is not None
    order = [str((r.metadata or {})["key"]) for r in job.dest.inlined_responses]
    assert sorted(order) == keys and order != keys  # shuffled: join on the key, never the position
    for key, answer in by_key(job).items():
        assert answer.error is None and answer.response is not None
        assert answer.response.text == f"echo {key}"
        usage = answer.response.usage_metadata
        assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
        assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
        assert answer.response.candidates and answer.response.candidates[0].finish_reason == types.FinishReason.STOP
    after = stats(emu)
    assert after["batches_created"] == before["batches_created"] + 1 and job.name in after["batches"]
    assert all(after["requests_by_custom_id"][k] == before["requests_by_custom_id"].get(k, 0) + 1 for k in keys)
    assert all(after["succeeded_by_custom_id"][k] == 1 for k in keys)
    assert after["files_uploaded"] == before["files_uploaded"]


def test_wire_shape_of_a_finished_batch(gemini: genai.Client, emu: Emulator) -> None:
    job = wait(gemini, gemini.batches.create(model=MODEL, src=[inline("w-1", "hello"), inline("w-2", "hi")],
                                             config={"display_name": "wire"}).name or "")
    document = raw(emu, job.name or "")
    metadata = document["metadata"]
    assert document["name"] == job.name and document["done"] is True
    assert metadata["@type"].endswith("v1beta.GenerateContentBatch") and metadata["state"] == "BATCH_STATE_SUCCEEDED"
    assert metadata["batchStats"] == {"requestCount": "2", "successfulRequestCount": "2",
                                      "failedRequestCount": "0", "pendingRequestCount": "0"}
    assert metadata["displayName"] == "wire" and metadata["model"] == f"models/{MODEL}"
    assert {"createTime", "updateTime", "endTime"} <= set(metadata)
    items = metadata["output"]["inlinedResponses"]["inlinedResponses"]
    assert {item["metadata"]["key"] for item in items} == {"w-1", "w-2"}
    assert all(set(item) == {"response", "metadata"} for item in items)


def test_per_row_errors_leave_the_batch_succeeded(gemini: genai.Client, emu: Emulator) -> None:
    src = [inline("ok-1", "fine"), inline("bad-1", "x [[emulator:error:invalid_request_error]]"),
           inline("bad-2", "y [[emulator:error:server_error]]"),
           inline("bad-3", "[[emulator:error:RESOURCE_EXHAUSTED]]"),
           inline("cut-1", "cut this answer in half [[emulator:truncate]]")]
    job = wait(gemini, gemini.batches.create(model=MODEL, src=src).name or "")
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    answers = by_key(job)
    assert answers["ok-1"].response is not None and answers["ok-1"].error is None
    codes = {key: answers[key].error.code for key in ("bad-1", "bad-2", "bad-3")}  # type: ignore[union-attr]
    assert codes == {"bad-1": 3, "bad-2": 13, "bad-3": 8}  # google.rpc.Code numbers
    assert "server_error" in (answers["bad-2"].error.message or "")  # type: ignore[union-attr]
    cut = answers["cut-1"].response
    assert cut is not None and cut.candidates and cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert len(cut.text or "") < len("cut this answer in half [[emulator:truncate]]")
    assert raw(emu, job.name or "")["metadata"]["batchStats"]["failedRequestCount"] == "3"


def test_every_row_failed_is_still_succeeded(gemini: genai.Client) -> None:
    """python-genai#2693: SUCCEEDED says nothing about the rows."""
    src = [inline(f"all-bad-{i}", "[[emulator:error:invalid_argument]]") for i in range(5)]
    job = wait(gemini, gemini.batches.create(model=MODEL, src=src).name or "")
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert all(r.error is not None and r.response is None for r in by_key(job).values())


def test_json_schema_answers_validate(gemini: genai.Client) -> None:
    schema = Triage.model_json_schema()
    src = [inline("json-1", "urgent ticket", response_mime_type="application/json", response_json_schema=schema),
           inline("json-2", "openapi schema", response_mime_type="application/json", response_schema=Triage),
           inline("json-3", "no schema", response_mime_type="application/json")]
    answers = by_key(wait(gemini, gemini.batches.create(model=MODEL, src=src).name or ""))
    first = Triage.model_validate_json(answers["json-1"].response.text or "")  # type: ignore[union-attr]
    assert first.summary == "urgent ticket"
    assert Triage.model_validate_json(answers["json-2"].response.text or "").summary == "openapi schema"  # type: ignore[union-attr]
    assert json.loads(answers["json-3"].response.text or "") == {"text": "no schema"}  # type: ignore[union-attr]


def test_system_instruction_counts_in_prompt_tokens(gemini: genai.Client) -> None:
    src = [inline("sys-0", "same"), inline("sys-1", "same", system_instruction="You are terse. " * 10)]
    answers = by_key(wait(gemini, gemini.batches.create(model=MODEL, src=src).name or ""))
    plain, with_system = (answers[k].response.usage_metadata.prompt_token_count  # type: ignore[union-attr]
                          for k in ("sys-0", "sys-1"))
    assert with_system is not None and plain is not None and with_system > plain
    assert answers["sys-1"].response.text == "same"  # type: ignore[union-attr]


def test_inline_body_over_20_mib_is_refused(gemini: genai.Client) -> None:
    src = [inline(f"big-{i}", "x" * (1024 * 1024)) for i in range(21)]
    with pytest.raises(errors.ClientError) as caught:
        gemini.batches.create(model=MODEL, src=src)
    assert caught.value.code == 400 and "20971520" in (caught.value.message or "")


# -- files and file batches ------------------------------------------------------------------------
def test_file_batch_round_trip_with_upload_get_and_download(gemini: genai.Client, emu: Emulator,
                                                            tmp_path: Path) -> None:
    before = stats(emu)
    rows = {f"file-{i:03d}": f"line {i}" for i in range(30)}
    rows["file-err"] = "[[emulator:error:rate_limit_exceeded]]"
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl_lines(rows))
    uploaded = gemini.files.upload(file=str(path), config={"display_name": "requests", "mime_type": "jsonl"})
    assert uploaded.name is not None and uploaded.name.startswith("files/")
    assert uploaded.size_bytes == path.stat().st_size and uploaded.state == types.FileState.ACTIVE
    assert uploaded.display_name == "requests" and uploaded.source == types.FileSource.UPLOADED
    fetched = gemini.files.get(name=uploaded.name)
    assert fetched.name == uploaded.name and fetched.size_bytes == uploaded.size_bytes

    job = wait(gemini, gemini.batches.create(model=MODEL, src=uploaded.name, config={"display_name": "f"}).name or "")
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None and job.dest.file_name and job.dest.inlined_responses is None
    output = gemini.files.get(name=job.dest.file_name)
    assert output.source == types.FileSource.GENERATED and output.download_uri
    lines = [json.loads(line) for line in gemini.files.download(file=job.dest.file_name).splitlines()]
    assert sorted(line["key"] for line in lines) == sorted(rows) and [x["key"] for x in lines] != list(rows)
    for line in lines:
        if line["key"] == "file-err":
            assert line["error"]["code"] == 8 and "response" not in line
        else:
            assert line["response"]["candidates"][0]["content"]["parts"][0]["text"] == rows[line["key"]]
    after = stats(emu)
    assert after["files_uploaded"] == before["files_uploaded"] + 1
    assert after["requests_by_custom_id"]["file-err"] == before["requests_by_custom_id"].get("file-err", 0) + 1


def test_multi_chunk_upload_of_a_stream(gemini: genai.Client) -> None:
    """google-genai sends 8 MiB chunks (``upload`` then ``upload, finalize``): 17 MiB takes three."""
    data = jsonl_lines({f"chunky-{i}": "y" * 4000 for i in range(4500)})
    assert len(data) > 16 * 1024 * 1024
    uploaded = gemini.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"})
    assert uploaded.size_bytes == len(data)
    job = wait(gemini, gemini.batches.create(model=MODEL, src=uploaded.name or "").name or "")
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.dest is not None
    assert len(gemini.files.download(file=job.dest.file_name or "").splitlines()) == 4500


def test_a_bad_input_line_fails_the_batch(gemini: genai.Client, emu: Emulator) -> None:
    data = jsonl_lines({"good": "fine"}) + b'{"key": "broken", "request": 7}\n'
    uploaded = gemini.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"})
    job = wait(gemini, gemini.batches.create(model=MODEL, src=uploaded.name or "").name or "")
    assert job.state == types.JobState.JOB_STATE_FAILED and job.dest is None
    error = raw(emu, job.name or "")["error"]
    assert error["code"] == 3 and "line 2" in error["message"]


def test_uploaded_files_cannot_be_downloaded_and_unknown_files_are_refused(gemini: genai.Client) -> None:
    uploaded = gemini.files.upload(file=io.BytesIO(jsonl_lines({"a": "b"})), config={"mime_type": "jsonl"})
    with pytest.raises(errors.ClientError) as refused:
        gemini.files.download(file=uploaded.name or "")
    assert refused.value.code == 400
    with pytest.raises(errors.ClientError) as unknown:
        gemini.files.get(name="files/doesnotexist")
    assert unknown.value.code == 403 and unknown.value.status == "PERMISSION_DENIED"
    gemini.files.delete(name=uploaded.name or "")
    with pytest.raises(errors.ClientError):
        gemini.files.get(name=uploaded.name or "")


def test_list_pages_through_batches_and_files(gemini: genai.Client) -> None:
    names = [gemini.batches.create(model=MODEL, src=[inline(f"list-{i}", "x")],
                                   config={"display_name": f"list-{i}"}).name for i in range(5)]
    listed = [job.name for job in gemini.batches.list(config={"page_size": 2})]
    assert set(names) <= set(listed)
    assert listed.index(names[-1]) < listed.index(names[0])  # newest first
    jobs = {job.name: job for job in gemini.batches.list(config={"page_size": 100})}
    assert jobs[names[2]].display_name == "list-2"
    files = list(gemini.files.list(config={"page_size": 1}))
    assert files and all(f.name and f.name.startswith("files/") for f in files)


# -- cancel, delete, expire ------------------------------------------------------------------------
def test_cancel_mid_way_keeps_answered_rows(start_emulator: Callable[..., Emulator]) -> None:
    slow = start_emulator(requests_per_second=100.0, api_key=KEY)
    client = connect(slow)
    try:
        keys = [f"slow-{i:03d}" for i in range(200)]
        name = client.batches.create(model=MODEL, src=[inline(k, k) for k in keys]).name or ""
        time.sleep(0.4)
        assert client.batches.get(name=name).state == types.JobState.JOB_STATE_RUNNING
        client.batches.cancel(name=name)
        job = wait(client, name)
        assert job.state == types.JobState.JOB_STATE_CANCELLED
        answered = by_key(job)
        assert 0 < len(answered) < len(keys) and all(r.response is not None for r in answered.values())
        client.batches.cancel(name=name)  # cancelling a cancelled batch is a no-op
        client.batches.delete(name=name)
        with pytest.raises(errors.ClientError) as gone:
            client.batches.get(name=name)
        assert gone.value.code == 404 and gone.value.status == "NOT_FOUND"
    finally:
        client.close()


def test_cancelling_a_finished_batch_is_refused(gemini: genai.Client) -> None:
    job = wait(gemini, gemini.batches.create(model=MODEL, src=[inline("done-1", "x")]).name or "")
    with pytest.raises(errors.ClientError) as refused:
        gemini.batches.cancel(name=job.name or "")
    assert refused.value.code == 400 and refused.value.status == "FAILED_PRECONDITION"


class _HandClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_cancel_while_pending_runs_out_its_cancelling_time_then_ends_cancelled() -> None:
    """The shared timeline: a cancel during validation is RUNNING for cancelling_seconds, then CANCELLED,
    whatever the validation time left."""
    clock = _HandClock()
    config = EmulatorConfig(validating_seconds=4.0, cancelling_seconds=1.0, api_key=KEY)
    with Emulator(config, clock=clock) as emulator:
        client = connect(emulator)
        try:
            name = client.batches.create(model=MODEL, src=[inline("p1", "x")]).name or ""
            assert client.batches.get(name=name).state == types.JobState.JOB_STATE_PENDING
            clock.now += 1.0
            client.batches.cancel(name=name)
            assert client.batches.get(name=name).state == types.JobState.JOB_STATE_RUNNING
            clock.now += 1.0  # cancel + cancelling_seconds, still inside the 4 s of validation
            ended = client.batches.get(name=name)
            assert ended.state == types.JobState.JOB_STATE_CANCELLED
            assert ended.end_time is not None and ended.end_time.timestamp() == clock.now
            assert emulator.stats()["gemini"]["succeeded_by_custom_id"] == {}
        finally:
            client.close()


def test_expired_batch_has_no_output(start_emulator: Callable[..., Emulator]) -> None:
    slow = start_emulator(requests_per_second=50.0, expire_after_seconds=0.3, api_key=KEY)
    client = connect(slow)
    try:
        job = wait(client, client.batches.create(model=MODEL, src=[inline(f"exp-{i}", "x") for i in range(100)]).name
                   or "")
        assert job.state == types.JobState.JOB_STATE_EXPIRED and job.dest is None
    finally:
        client.close()


# -- auth, versions, quirks, fault plan ------------------------------------------------------------
def test_wrong_api_key_is_refused(emu: Emulator) -> None:
    client = connect(emu, api_key="wrong")
    try:
        with pytest.raises(errors.ClientError) as caught:
            client.batches.list()
        assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
        with pytest.raises(errors.ClientError):
            client.files.upload(file=io.BytesIO(b"{}\n"), config={"mime_type": "jsonl"})
    finally:
        client.close()


def test_v1_shares_paths_with_openai_without_confusing_them(emu: Emulator) -> None:
    """``/v1/batches`` is both OpenAI's and Gemini's: each SDK reaches its own batches."""
    client = connect(emu, api_version="v1")
    oai = openai.OpenAI(base_url=emu.openai_base_url, api_key=KEY, max_retries=0)
    try:
        uploaded = client.files.upload(file=io.BytesIO(jsonl_lines({"v1-file": "by file"})),
                                       config={"mime_type": "jsonl"})
        inline_job = client.batches.create(model=MODEL, src=[inline("v1-inline", "inline v1")])
        file_job = client.batches.create(model=MODEL, src=uploaded.name or "")
        assert by_key(wait(client, inline_job.name or ""))["v1-inline"].response.text == "inline v1"  # type: ignore[union-attr]
        finished = wait(client, file_job.name or "")
        assert finished.dest is not None
        assert b"by file" in client.files.download(file=finished.dest.file_name or "")
        assert raw(emu, inline_job.name or "", "v1")["metadata"]["@type"].endswith("v1.GenerateContentBatch")
        assert inline_job.name in {job.name for job in client.batches.list()}
        assert client.files.get(name=uploaded.name or "").name == uploaded.name
        openai_ids = {batch.id for batch in oai.batches.list()}  # OpenAI's /v1/batches is still OpenAI's
        assert not {(inline_job.name or "").removeprefix("batches/"), (file_job.name or "")} & openai_ids
        with pytest.raises(openai.NotFoundError):
            oai.batches.retrieve((inline_job.name or "").removeprefix("batches/"))
    finally:
        client.close()
        oai.close()


def test_quirk_drops_inline_metadata(start_emulator: Callable[..., Emulator]) -> None:
    quirky = start_emulator()
    httpx.post(f"{quirky.url}/_emulator/gemini/quirks", json={"inline_metadata": False}).raise_for_status()
    client = connect(quirky)
    try:
        job = wait(client, client.batches.create(model=MODEL, src=[inline("q-1", "a"), inline("q-2", "b")]).name or "")
        assert job.dest is not None and job.dest.inlined_responses
        assert all(r.metadata is None and r.response is not None for r in job.dest.inlined_responses)
    finally:
        client.close()


def test_fault_plan_fails_chosen_rows_and_breaks_file_lines(start_emulator: Callable[..., Emulator]) -> None:
    plan = FaultPlan(row_error_rate=0.3, row_error_code="server_error", malformed_output_rate=0.2, seed=7)
    faulty = start_emulator(fault_plan=plan)
    client = connect(faulty)
    try:
        rows = {f"plan-{i:03d}": f"text {i}" for i in range(100)}
        uploaded = client.files.upload(file=io.BytesIO(jsonl_lines(rows)), config={"mime_type": "jsonl"})
        job = wait(client, client.batches.create(model=MODEL, src=uploaded.name or "").name or "")
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.dest is not None
        lines = client.files.download(file=job.dest.file_name or "").splitlines()
        readable = []
        for line in lines:
            try:
                readable.append(json.loads(line))
            except ValueError:
                continue
        failing = {key for key in rows if plan.row_error_selected(key)}
        broken = {key for key in rows if plan.malformed_selected(key)}
        assert len(readable) == len(rows) - len(broken)
        assert all(("error" in line) == (line["key"] in failing) for line in readable)
        assert all(line["error"]["code"] == 13 for line in readable if "error" in line)
        section = faulty.stats()["gemini"]
        assert section["row_errors_injected"] == len(failing) and section["malformed_lines"] == len(broken)
        assert set(section["succeeded_by_custom_id"]) == set(rows) - failing - broken
    finally:
        client.close()


# -- the async client ------------------------------------------------------------------------------
async def test_async_client_inline_file_list_cancel_and_download(emu: Emulator) -> None:
    client = connect(emu)
    try:
        inline_job = await client.aio.batches.create(
            model=MODEL, src=[inline(f"aio-{i}", f"async {i}") for i in range(10)], config={"display_name": "aio"})
        uploaded = await client.aio.files.upload(file=io.BytesIO(jsonl_lines({"aio-file": "async file"})),
                                                 config={"mime_type": "jsonl", "display_name": "aio"})
        file_job = await client.aio.batches.create(model=MODEL, src=uploaded.name or "")
        done_inline, done_file = await asyncio.gather(wait_async(client, inline_job.name or ""),
                                                      wait_async(client, file_job.name or ""))
        assert {k: r.response.text for k, r in by_key(done_inline).items()} == {  # type: ignore[union-attr]
            f"aio-{i}": f"async {i}" for i in range(10)}
        assert done_file.dest is not None
        data = await client.aio.files.download(file=done_file.dest.file_name or "")
        assert json.loads(data)["key"] == "aio-file"
        names = [job.name async for job in await client.aio.batches.list(config={"page_size": 3})]
        assert inline_job.name in names and file_job.name in names
        running = await client.aio.batches.create(model=MODEL, src=[inline(f"aio-c-{i}", "x") for i in range(2000)])
        await client.aio.batches.cancel(name=running.name or "")
        cancelled = await wait_async(client, running.name or "")
        assert cancelled.state == types.JobState.JOB_STATE_CANCELLED
        await client.aio.batches.delete(name=running.name or "")
    finally:
        await client.aio.aclose()
        client.close()
