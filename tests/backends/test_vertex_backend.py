"""VertexBatchBackend with google-genai (vertexai=True) against the bundled emulator, whose jobs read and
write the real GCS and BigQuery emulators: request translation, staging, results joined by key, every
job state, per-row errors, cancel, expiry, create failures and re-attach by tag."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import Client, types
from google.oauth2.credentials import Credentials
from pydantic import BaseModel, Field

from airflow_llm_batch.backends.generate_content import CANONICAL_CODES, JOB_STATES, status_text_error
from airflow_llm_batch.backends.vertex import VertexBatchBackend, decode_prediction, job_labels
from airflow_llm_batch.backends.vertex_staging import GoogleClients, VertexStaging, stage_chunk
from airflow_llm_batch.emulator import Emulator, EmulatorConfig
from airflow_llm_batch.emulator.vertex_api import set_vertex_storage
from airflow_llm_batch.exceptions import InvalidInputError, ProviderError
from airflow_llm_batch.google.emulators import LocalBigQuery, LocalGcs
from airflow_llm_batch.google.settings import GoogleSettings
from airflow_llm_batch.pipeline.types import BatchState, Endpoint, LLMRequest, RawResult
from tests.gcp import fixtures as gcp_fixtures
from tests.gcp.fixtures import unique_name

bq_emulator, gcs_emulator = gcp_fixtures.bq_emulator, gcp_fixtures.gcs_emulator  # the session's emulators

PROJECT, LOCATION = "test-project", "us-central1"
FAST = EmulatorConfig(validating_seconds=0.04, requests_per_second=20_000.0, finalizing_seconds=0.02,
                      cancelling_seconds=0.02)
FAKE_TOKEN = Credentials(token="fake")  # type: ignore[no-untyped-call]  # google-auth is untyped
JOBS = f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/batchPredictionJobs"


class Listing(BaseModel):
    """A product listing."""

    title: str = Field(max_length=60)
    stars: int = Field(ge=1, le=5)


def request(key: str = "r1", prompt: str = "Hello", **fields: Any) -> LLMRequest:
    return LLMRequest(custom_id=key, key=key, model=fields.pop("model", "gemini-2.5-flash"),
                      endpoint=fields.pop("endpoint", Endpoint.CHAT), prompt=prompt, **fields)


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture
def bucket(gcs_emulator: LocalGcs) -> str:
    return str(gcs_emulator.client().create_bucket(unique_name("vx").replace("_", "-")).name)


@pytest.fixture
def start(gcs_emulator: LocalGcs) -> Iterator[Any]:
    """Start emulators (config overrides) whose jobs use the GCS (and, when given, BigQuery) emulator."""
    started: list[Emulator] = []

    def _start(bq: LocalBigQuery | None = None, **overrides: Any) -> Emulator:
        emu = Emulator(FAST.replace(**overrides))
        emu.start()
        started.append(emu)
        set_vertex_storage(emu.url, gcs_endpoint=gcs_emulator.endpoint,
                           bigquery_endpoint=bq.endpoint if bq is not None else None)
        return emu

    yield _start
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(start: Any) -> Emulator:
    return start()  # type: ignore[no-any-return]


class Backends:
    """Builds backends in the running loop and closes them all at the end."""

    def __init__(self, gcs: LocalGcs) -> None:
        self.gcs = gcs
        self.built: list[VertexBatchBackend] = []

    def __call__(self, emu: Emulator, staging: str, output: str | None = None, bq: LocalBigQuery | None = None,
                 **options: Any) -> VertexBatchBackend:
        client = Client(vertexai=True, project=PROJECT, location=LOCATION, credentials=FAKE_TOKEN,
                        http_options=types.HttpOptions(base_url=emu.url,
                                                       retry_options=types.HttpRetryOptions(attempts=1)))
        settings = GoogleSettings(conn_id=None, project=PROJECT, storage_endpoint=self.gcs.endpoint,
                                  bigquery_endpoint=bq.endpoint if bq is not None else None)
        backend = VertexBatchBackend(client, staging=VertexStaging.parse(staging, output, PROJECT),
                                     clients=GoogleClients(settings, PROJECT),
                                     create_retry_delays=(0.02, 0.02, 0.02), **options)
        self.built.append(backend)
        return backend


@pytest.fixture
async def backends(gcs_emulator: LocalGcs) -> AsyncIterator[Backends]:
    made = Backends(gcs_emulator)
    yield made
    for backend in made.built:
        await backend.aclose()


def chunk(tmp_path: Path, backend: VertexBatchBackend, requests: list[LLMRequest]) -> Path:
    path = tmp_path / f"chunk-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_text("".join(json.dumps(backend.request_line(r), ensure_ascii=False) + "\n" for r in requests))
    return path


def tags(tag: str | None = None) -> dict[str, str]:
    return {"llm_batch_tag": tag or f"llmb-{uuid.uuid4().hex[:16]}-00000", "dag_id": "Catalog.Daily",
            "task_id": "describe", "run_id": "manual__2026-11-21T00:00:00+00:00", "chunk": "00000"}


async def submit(backend: VertexBatchBackend, path: Path, tag_set: dict[str, str] | None = None) -> str:
    count = await asyncio.to_thread(lambda: len(path.read_text().splitlines()))
    return await backend.submit(lambda: path.open("rb"), count, tag_set or tags())


async def wait_ended(backend: VertexBatchBackend, job: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (progress := await backend.progress(job)).state.is_terminal:
        assert time.monotonic() < deadline, progress
        await asyncio.sleep(0.02)
    return progress


async def answers(backend: VertexBatchBackend, job: str) -> list[RawResult]:
    return [answer async for answer in backend.results(job)]


def rows(count: int, prefix: str | None = None, **extra: Any) -> list[LLMRequest]:
    prefix = prefix or uuid.uuid4().hex[:6]
    return [request(f"{prefix}-{i:04d}", f"row {i} of {prefix}", **extra) for i in range(count)]


# -- building request lines ------------------------------------------------------------------------
def test_request_line_carries_key_model_and_a_generate_content_request(backends: Backends, emu: Emulator) -> None:
    backend = backends(emu, "gs://b/stage")
    schema = Listing.model_json_schema()
    line = backend.request_line(request("k 1/é", "Describe: lamp", system_prompt="Write copy.",
                                        response_schema=schema,
                                        params={"temperature": 0.2, "max_tokens": 300, "top_p": 0.9,
                                                "stop": ["END"], "safety_settings": [{"category": "x"}],
                                                "generation_config": {"candidateCount": 1}}))
    assert line == {"key": "k 1/é", "model": "gemini-2.5-flash", "request": {
        "contents": [{"role": "user", "parts": [{"text": "Describe: lamp"}]}],
        "systemInstruction": {"parts": [{"text": "Write copy."}]},
        "safetySettings": [{"category": "x"}],
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 300, "topP": 0.9, "stopSequences": ["END"],
                             "candidateCount": 1, "responseMimeType": "application/json",
                             "responseJsonSchema": schema}}}
    assert backend.request_line(request(json_output=True))["request"]["generationConfig"] == {  # type: ignore[index]
        "responseMimeType": "application/json"}
    assert "generationConfig" not in backend.request_line(request())["request"]  # type: ignore[operator]
    assert backend.custom_id_for("any key / ключ") == "any key / ключ"


def test_unknown_params_and_embeddings_are_refused_before_anything_is_paid(backends: Backends,
                                                                            emu: Emulator) -> None:
    backend = backends(emu, "gs://b/stage")
    with pytest.raises(InvalidInputError, match=r"\['response_format', 'n'\]|\['n', 'response_format'\]"):
        backend.request_line(request(params={"n": 2, "response_format": {"type": "json_object"}}))
    with pytest.raises(InvalidInputError, match="not embeddings"):
        backend.request_line(request(endpoint=Endpoint.EMBEDDINGS))


def test_staging_locations_parse_and_name_their_objects() -> None:
    staging = VertexStaging.parse("gs://bkt/llm/", None, PROJECT)
    assert staging.input_for("llmb-ab-00001") == "gs://bkt/llm/llmb-ab-00001/requests.jsonl"
    assert staging.output_for("llmb-ab-00001") == "gs://bkt/llm/output/llmb-ab-00001"
    mixed = VertexStaging.parse("bq://ds_only", "bq://other.results", PROJECT)
    assert mixed.input_for("llmb-ab-00001-a2") == f"{PROJECT}.ds_only.llmb_in_llmb_ab_00001_a2"
    assert mixed.output_for("llmb-ab-00001-a2") == "bq://other.results.llmb_out_llmb_ab_00001_a2"
    for bad in (None, "s3://x/y", "bq://p.d.table"):
        with pytest.raises(InvalidInputError):
            VertexStaging.parse(bad, None, PROJECT)


def test_every_job_state_of_both_sdks_has_a_neutral_state() -> None:
    from google.cloud.aiplatform_v1.types import JobState as AiplatformJobState

    names = set(types.JobState.__members__) | set(AiplatformJobState.__members__)
    assert names <= set(JOB_STATES)
    assert JOB_STATES["JOB_STATE_PARTIALLY_SUCCEEDED"] == BatchState.COMPLETED
    assert JOB_STATES["JOB_STATE_EXPIRED"] == BatchState.EXPIRED
    assert JOB_STATES["JOB_STATE_QUEUED"] == BatchState.PENDING


# -- a job over Cloud Storage ----------------------------------------------------------------------
async def test_gcs_round_trip_answers_are_shuffled_and_joined_by_key(
        tmp_path: Path, backends: Backends, emu: Emulator, bucket: str, gcs_emulator: LocalGcs) -> None:
    backend = backends(emu, f"gs://{bucket}/stage")
    requests = rows(300, system_prompt="Echo.")
    tag_set = tags()
    job = await submit(backend, chunk(tmp_path, backend, requests), tag_set)
    assert job.startswith(f"projects/{PROJECT}/locations/{LOCATION}/batchPredictionJobs/")
    staged = gcs_emulator.client().bucket(bucket).blob(f"stage/{tag_set['llm_batch_tag']}/requests.jsonl")
    assert len(staged.download_as_text().splitlines()) == 300

    progress = await wait_ended(backend, job)
    assert (progress.state, progress.provider_status) == (BatchState.COMPLETED, "succeeded")
    assert (progress.total, progress.completed, progress.failed) == (300, 300, 0)
    got = await answers(backend, job)
    assert [a.custom_id for a in got] != [r.custom_id for r in requests]  # the service's order
    by_key = {a.custom_id: a for a in got}
    assert set(by_key) == {r.custom_id for r in requests}
    for r in requests:
        answer = by_key[r.custom_id]
        assert answer.ok and answer.text == r.prompt and answer.finish_reason == "stop"
        assert answer.model == "gemini-2.5-flash" and answer.usage.input_tokens > 0 < answer.usage.output_tokens
    outputs = [b.name for b in gcs_emulator.client().list_blobs(bucket, prefix="stage/output/")]
    assert len(outputs) == 1 and outputs[0].startswith(f"stage/output/{tag_set['llm_batch_tag']}/prediction-model-")
    assert emu.stats()["vertex"]["batches_created"] == 1


async def test_job_carries_tag_in_display_name_and_labels_seen_by_aiplatform(
        tmp_path: Path, backends: Backends, emu: Emulator, bucket: str) -> None:
    backend = backends(emu, f"gs://{bucket}/stage")
    tag_set = tags()
    job = await submit(backend, chunk(tmp_path, backend, rows(3)), tag_set)
    raw = await asyncio.to_thread(_aiplatform_job, emu, job)
    assert raw.display_name.startswith(tag_set["llm_batch_tag"] + " Catalog.Daily.describe")
    assert dict(raw.labels) == {"llm_batch_tag": tag_set["llm_batch_tag"], "dag_id": "catalog_daily",
                                "task_id": "describe", "chunk": "00000"}
    assert job_labels({"run_id": "x", "dag_id": "A" * 80}) == {"dag_id": "a" * 63}


def _aiplatform_job(emu: Emulator, name: str) -> Any:
    import vertexai
    from vertexai.batch_prediction import BatchPredictionJob

    vertexai.init(project=PROJECT, location=LOCATION, api_endpoint=emu.url, api_transport="rest",
                  credentials=FAKE_TOKEN)
    return BatchPredictionJob(name)._gca_resource


async def test_structured_answers_follow_the_json_schema(tmp_path: Path, backends: Backends, emu: Emulator,
                                                         bucket: str) -> None:
    backend = backends(emu, f"gs://{bucket}/stage")
    requests = rows(20, response_schema=Listing.model_json_schema())
    job = await submit(backend, chunk(tmp_path, backend, requests))
    await wait_ended(backend, job)
    for answer in await answers(backend, job):
        listing = Listing.model_validate_json(answer.text or "")
        assert listing.title.startswith("row ") and 1 <= listing.stars <= 5


async def test_partially_succeeded_rows_carry_their_own_reason(tmp_path: Path, backends: Backends,
                                                               emu: Emulator, bucket: str) -> None:
    backend = backends(emu, f"gs://{bucket}/stage")
    requests = rows(40)
    markers = {0: "invalid_request_error", 1: "rate_limit_exceeded", 2: "server_error", 3: "UNAVAILABLE",
               4: "truncate"}
    for i, code in markers.items():
        marker = "[[emulator:truncate]]" if code == "truncate" else f"[[emulator:error:{code}]]"
        requests[i] = request(requests[i].custom_id, f"{requests[i].prompt} {marker}")
    job = await submit(backend, chunk(tmp_path, backend, requests))
    progress = await wait_ended(backend, job)
    assert (progress.state, progress.provider_status) == (BatchState.COMPLETED, "partially_succeeded")
    assert (progress.completed, progress.failed, progress.total) == (36, 4, 40)
    by_key = {a.custom_id: a for a in await answers(backend, job)}
    expected = {0: ("invalid_request_error", "INVALID_ARGUMENT (400)"), 1: ("rate_limit_exceeded",
                "RESOURCE_EXHAUSTED (429)"), 2: ("server_error", "INTERNAL (500)"),
                3: ("service_unavailable", "UNAVAILABLE (503)")}
    for i, (code, prefix) in expected.items():
        answer = by_key[requests[i].custom_id]
        assert not answer.ok and answer.error_code == code and answer.error_message
        assert answer.error_message.startswith(prefix) and markers[i] in answer.error_message
    truncated = by_key[requests[4].custom_id]
    assert truncated.ok and truncated.finish_reason == "length"
    assert sum(a.ok for a in by_key.values()) == 36


async def test_cancel_mid_way_keeps_the_answered_rows(tmp_path: Path, backends: Backends, start: Any,
                                                      bucket: str) -> None:
    emu = start(requests_per_second=200.0)
    backend = backends(emu, f"gs://{bucket}/stage")
    requests = rows(400)  # two seconds of work
    job = await submit(backend, chunk(tmp_path, backend, requests))
    await asyncio.sleep(0.5)
    await backend.cancel(job)
    assert (await backend.progress(job)).state in (BatchState.CANCELLING, BatchState.CANCELLED)
    progress = await wait_ended(backend, job)
    assert (progress.state, progress.provider_status) == (BatchState.CANCELLED, "cancelled")
    got = await answers(backend, job)
    assert 0 < len(got) < 400 and progress.completed == len(got) and progress.total == 400
    assert all(a.ok for a in got)
    await backend.cancel(job)  # ended: nothing left to stop, no error


async def test_expired_job_keeps_answered_rows_and_counts_the_rest_incomplete(
        tmp_path: Path, backends: Backends, start: Any, bucket: str) -> None:
    emu = start(requests_per_second=300.0, expire_after_seconds=0.6)
    backend = backends(emu, f"gs://{bucket}/stage")
    job = await submit(backend, chunk(tmp_path, backend, rows(600)))
    progress = await wait_ended(backend, job)
    assert (progress.state, progress.provider_status) == (BatchState.EXPIRED, "expired")
    got = await answers(backend, job)
    assert 0 < len(got) < 600 and progress.completed == len(got) and progress.total == 600


async def test_a_job_that_cannot_write_its_output_fails_with_a_reason(tmp_path: Path, backends: Backends,
                                                                      emu: Emulator, bucket: str) -> None:
    backend = backends(emu, f"gs://{bucket}/stage", output=f"gs://{bucket}-missing/out")
    job = await submit(backend, chunk(tmp_path, backend, rows(5)))
    progress = await wait_ended(backend, job)
    assert progress.state == BatchState.FAILED and progress.provider_status == "failed"
    (error,) = progress.errors
    assert error["code"] == "not_found" and "does not exist" in error["message"]
    assert await answers(backend, job) == []


async def test_staging_into_a_missing_bucket_fails_before_any_job_exists(tmp_path: Path, backends: Backends,
                                                                         emu: Emulator) -> None:
    backend = backends(emu, f"gs://{unique_name('nobucket').replace('_', '-')}/stage")
    with pytest.raises(ProviderError, match="nothing was submitted"):
        await submit(backend, chunk(tmp_path, backend, rows(2)))
    assert emu.stats()["vertex"]["batches_created"] == 0


async def test_a_refused_create_is_a_provider_error(tmp_path: Path, backends: Backends, emu: Emulator,
                                                    bucket: str) -> None:
    backend = backends(emu, f"gs://{bucket}/stage")
    path = chunk(tmp_path, backend, rows(2, model="acme/models/x"))
    with pytest.raises(ProviderError, match="400 INVALID_ARGUMENT") as refused:
        await submit(backend, path)
    assert refused.value.status_code == 400


async def test_polling_an_unknown_job_is_a_provider_error_with_its_status(backends: Backends,
                                                                         emu: Emulator) -> None:
    backend = backends(emu, "gs://b/stage")
    with pytest.raises(ProviderError, match="404 NOT_FOUND") as missing:
        await backend.progress(f"projects/{PROJECT}/locations/{LOCATION}/batchPredictionJobs/123")
    assert missing.value.status_code == 404  # the trigger stops at once instead of polling again


# -- creating without paying twice, finding again --------------------------------------------------
async def test_a_lost_create_response_is_found_by_its_tag_not_created_again(
        tmp_path: Path, backends: Backends, emu: Emulator, bucket: str) -> None:
    backend = backends(emu, f"gs://{bucket}/stage")
    emu.inject_fault(500, path_prefix=JOBS, method="POST", lose_response=True)
    job = await submit(backend, chunk(tmp_path, backend, rows(10)))
    assert emu.stats()["vertex"]["batches_created"] == 1 and emu.stats()["vertex"]["batches"] == [job]
    assert (await wait_ended(backend, job)).completed == 10


async def test_transient_create_failures_are_tried_again_once_nothing_landed(
        tmp_path: Path, backends: Backends, emu: Emulator, bucket: str) -> None:
    backend = backends(emu, f"gs://{bucket}/stage")
    emu.inject_fault(503, count=2, path_prefix=JOBS, method="POST")
    job = await submit(backend, chunk(tmp_path, backend, rows(4)))
    assert emu.stats()["vertex"]["batches"] == [job]


async def test_find_matches_only_the_tag_and_the_time_window(tmp_path: Path, backends: Backends, emu: Emulator,
                                                             bucket: str) -> None:
    backend = backends(emu, f"gs://{bucket}/stage")
    mine, other = tags(), tags()
    before = time.time() - 5
    job = await submit(backend, chunk(tmp_path, backend, rows(2)), mine)
    await submit(backend, chunk(tmp_path, backend, rows(2)), other)
    assert await backend.find(mine["llm_batch_tag"], before) == [job]
    assert await backend.find(mine["llm_batch_tag"], time.time() + 60) == []
    assert await backend.find(f"llmb-{uuid.uuid4().hex[:16]}-00000", before) == []


# -- a job over BigQuery ---------------------------------------------------------------------------
@pytest.fixture
def dataset(bq_emulator: LocalBigQuery) -> str:
    return f"{bq_emulator.project}.{bq_emulator.client().create_dataset(unique_name('vx')).dataset_id}"


async def test_bigquery_staging_and_bigquery_output(tmp_path: Path, backends: Backends, start: Any, bucket: str,
                                                    bq_emulator: LocalBigQuery, dataset: str) -> None:
    emu = start(bq=bq_emulator)
    backend = backends(emu, f"bq://{dataset}", bq=bq_emulator)
    requests = rows(120)
    requests[7] = request(requests[7].custom_id, "bad [[emulator:error:invalid_request_error]]")
    tag_set = tags()
    job = await submit(backend, chunk(tmp_path, backend, requests), tag_set)
    table = f"{dataset}.llmb_in_{tag_set['llm_batch_tag'].replace('-', '_')}"
    staged = {f.name: f.field_type for f in bq_emulator.client().get_table(table).schema}
    assert staged == {"key": "STRING", "model": "STRING", "request": "JSON"}
    progress = await wait_ended(backend, job)
    assert (progress.provider_status, progress.completed, progress.failed) == ("partially_succeeded", 119, 1)
    by_key = {a.custom_id: a for a in await answers(backend, job)}
    assert set(by_key) == {r.custom_id for r in requests}
    assert by_key[requests[7].custom_id].error_code == "invalid_request_error"
    assert all(by_key[r.custom_id].text == r.prompt for i, r in enumerate(requests) if i != 7)
    out = f"{dataset}.llmb_out_{tag_set['llm_batch_tag'].replace('-', '_')}"
    columns = {f.name: f.field_type for f in bq_emulator.client().get_table(out).schema}
    assert {"key": "STRING", "request": "JSON", "response": "JSON", "status": "STRING"}.items() <= columns.items()


async def test_staging_the_same_chunk_twice_never_doubles_its_rows(tmp_path: Path, backends: Backends,
                                                                   start: Any, bq_emulator: LocalBigQuery,
                                                                   dataset: str) -> None:
    emu = start(bq=bq_emulator)
    backend = backends(emu, f"bq://{dataset}", bq=bq_emulator)
    path = chunk(tmp_path, backend, rows(30))
    for _ in range(2):
        await stage_chunk(backend.staging, backend.clients, lambda: path.open("rb"), "llmb-0000000000000000-00007")
    count = bq_emulator.client().query(
        f"SELECT COUNT(*) AS n FROM `{dataset}.llmb_in_llmb_0000000000000000_00007`").result()
    assert [dict(r.items()) for r in count] == [{"n": 30}]


# -- decoding --------------------------------------------------------------------------------------
def test_row_errors_keep_the_google_status_and_map_to_policy_codes() -> None:
    status = ('Bad Request: {"error": {"code": 400, "message": "Please use a valid role.", '
              '"status": "INVALID_ARGUMENT"}}')
    assert status_text_error(status) == ("invalid_request_error", "INVALID_ARGUMENT (400): Please use a valid role.")
    assert status_text_error("Too Many Requests: quota")[0] == "rate_limit_exceeded"
    assert status_text_error("something odd")[0] == "error"
    assert CANONICAL_CODES["RESOURCE_EXHAUSTED"] == "rate_limit_exceeded"
    assert CANONICAL_CODES["INTERNAL"] == "server_error"


def test_decoding_blocked_withheld_thinking_and_bigquery_text_answers() -> None:
    blocked = decode_prediction({"key": "a", "status": "", "response": {"promptFeedback": {"blockReason": "SAFETY"},
                                                                       "usageMetadata": {"promptTokenCount": 4}}})
    assert blocked and not blocked.ok and blocked.error_code == "prompt_blocked" and blocked.usage.input_tokens == 4
    withheld = decode_prediction({"key": "b", "status": "", "response": {"candidates": [
        {"finishReason": "SAFETY", "content": {"parts": []}}]}})
    assert withheld and withheld.error_code == "content_filter"
    thinking = decode_prediction({"key": "c", "status": "", "response": json.dumps({
        "candidates": [{"finishReason": "STOP", "content": {"parts": [{"text": "plan", "thought": True},
                                                                      {"text": "answer"}]}}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3, "thoughtsTokenCount": 7,
                          "cachedContentTokenCount": 6}, "modelVersion": "gemini-2.5-pro"})})
    assert thinking and thinking.ok and thinking.text == "answer" and thinking.model == "gemini-2.5-pro"
    usage = thinking.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (10, 10, 6)
    assert decode_prediction({"status": "", "response": {}}) is None and decode_prediction(None) is None
