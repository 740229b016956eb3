"""The emulated Vertex AI batch prediction API, driven by the official clients unchanged: google-genai with
vertexai=True (v1beta1 and v1) and google-cloud-aiplatform's BatchPredictionJob (REST, enum numbers).
Jobs really read their input from and write their output to the GCS and BigQuery emulators."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import aiohttp
import pytest
from google.genai import Client, errors, types
from google.oauth2.credentials import Credentials

from airflow_llm_batch.emulator import Emulator
from airflow_llm_batch.emulator.faults import FaultPlan
from airflow_llm_batch.emulator.vertex_api import set_vertex_storage
from airflow_llm_batch.google.emulators import LocalBigQuery, LocalGcs
from tests.gcp import fixtures as gcp_fixtures
from tests.gcp.fixtures import unique_name

bq_emulator, gcs_emulator = gcp_fixtures.bq_emulator, gcp_fixtures.gcs_emulator  # the session's emulators

PROJECT, LOCATION = "test-project", "us-central1"
FAKE_TOKEN = Credentials(token="fake")  # type: ignore[no-untyped-call]  # google-auth is untyped
ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
         "JOB_STATE_EXPIRED"}


@pytest.fixture
def vertex(start_emulator: Callable[..., Emulator], gcs_emulator: LocalGcs) -> Callable[..., Emulator]:
    """Start an emulator (config overrides) whose jobs use the GCS emulator (and BigQuery when given)."""

    def start(bq: LocalBigQuery | None = None, **overrides: Any) -> Emulator:
        emu = start_emulator(**overrides)
        set_vertex_storage(emu.url, gcs_endpoint=gcs_emulator.endpoint,
                           bigquery_endpoint=bq.endpoint if bq is not None else None)
        return emu

    return start


@pytest.fixture
def bucket(gcs_emulator: LocalGcs) -> Any:
    return gcs_emulator.client().create_bucket(unique_name("vxe").replace("_", "-"))


def genai_client(emu: Emulator, api_version: str | None = None) -> Client:
    return Client(vertexai=True, project=PROJECT, location=LOCATION, credentials=FAKE_TOKEN,
                  http_options=types.HttpOptions(base_url=emu.url, api_version=api_version))


def stage(bucket: Any, name: str, lines: Sequence[Mapping[str, Any] | str]) -> str:
    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    bucket.blob(name).upload_from_string(body)
    return f"gs://{bucket.name}/{name}"


def line(key: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, **extra, "request": {"contents": [{"role": "user", "parts": [{"text": text}]}]}}


def wait(client: Client, name: str, timeout: float = 20.0) -> tuple[types.BatchJob, list[str]]:
    """Poll until the job ends (``BatchJob.done`` misses PARTIALLY_SUCCEEDED); the states seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        state = job.state.name if job.state else ""
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in ENDED:
            return job, seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.01)


def output_folder(job: types.BatchJob) -> str:
    assert job.output_info is not None and job.output_info.gcs_output_directory
    return job.output_info.gcs_output_directory


def output_lines(gcs: LocalGcs, folder: str) -> list[dict[str, Any]]:
    bucket, _, prefix = folder[5:].partition("/")
    blob = gcs.client().bucket(bucket).blob(f"{prefix}/predictions.jsonl")
    return [json.loads(text) for text in blob.download_as_text().splitlines()]


# -- google-genai ----------------------------------------------------------------------------------
@pytest.mark.parametrize("api_version", [None, "v1"])
def test_genai_job_reads_gcs_and_writes_predictions_jsonl(vertex: Callable[..., Emulator], bucket: Any,
                                                         gcs_emulator: LocalGcs, api_version: str | None) -> None:
    emu = vertex(validating_seconds=0.2, requests_per_second=400.0, finalizing_seconds=0.1)
    src = stage(bucket, "in/rows.jsonl", [line(f"k{i:03d}", f"text {i}", sku=i) for i in range(120)])
    client = genai_client(emu, api_version)
    created = client.batches.create(model="gemini-2.5-flash", src=src,
                                    config=types.CreateBatchJobConfig(display_name="catalog-1",
                                                                      dest=f"gs://{bucket.name}/out"))
    assert created.state == types.JobState.JOB_STATE_QUEUED and created.display_name == "catalog-1"
    assert created.model == "publishers/google/models/gemini-2.5-flash"
    job, seen = wait(client, str(created.name))
    assert seen[0] in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING") and "JOB_STATE_RUNNING" in seen
    assert seen[-1] == "JOB_STATE_SUCCEEDED" and job.end_time and job.start_time
    assert job.completion_stats and (job.completion_stats.successful_count, job.completion_stats.failed_count,
                                     job.completion_stats.incomplete_count) == (120, 0, 0)
    folder = str(job.output_info.gcs_output_directory if job.output_info else "")
    assert folder.startswith(f"gs://{bucket.name}/out/prediction-model-")
    lines = output_lines(gcs_emulator, folder)
    assert sorted(r["key"] for r in lines) == [f"k{i:03d}" for i in range(120)]
    assert [r["key"] for r in lines] != sorted(r["key"] for r in lines)  # not the input order
    first = lines[0]
    assert list(first) == ["key", "sku", "status", "processed_time", "request", "response"]
    assert first["status"] == "" and first["sku"] == int(first["key"][1:])
    parts = first["response"]["candidates"][0]["content"]["parts"]
    assert parts == [{"text": f"text {first['sku']}"}]
    assert first["response"]["usageMetadata"]["promptTokenCount"] > 0
    client.close()


def test_genai_row_failures_make_the_job_partially_succeeded(vertex: Callable[..., Emulator], bucket: Any,
                                                             gcs_emulator: LocalGcs) -> None:
    emu = vertex()
    src = stage(bucket, "in/mixed.jsonl", [line("ok", "fine"), line("bad", "x [[emulator:error:RESOURCE_EXHAUSTED]]"),
                                           "not json", {"key": "norequest"}])
    client = genai_client(emu)
    job, _ = wait(client, str(client.batches.create(model="gemini-2.5-flash", src=src, config={
        "dest": f"gs://{bucket.name}/out2"}).name))
    assert job.state == types.JobState.JOB_STATE_PARTIALLY_SUCCEEDED
    assert not job.done  # google-genai's `done` does not count this state as ended
    stats = job.completion_stats
    assert stats and (stats.successful_count, stats.failed_count) == (1, 3)
    by_key = {r.get("key"): r for r in output_lines(gcs_emulator, output_folder(job))}
    status = by_key["bad"]["status"]
    assert status.startswith("Too Many Requests: ") and "response" not in by_key["bad"]
    assert json.loads(status.split(": ", 1)[1])["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert json.loads(by_key["norequest"]["status"].split(": ", 1)[1])["error"]["code"] == 400
    assert by_key["ok"]["status"] == ""
    client.close()


def test_genai_structured_output_from_either_schema_field(vertex: Callable[..., Emulator], bucket: Any,
                                                          gcs_emulator: LocalGcs) -> None:
    emu = vertex()
    json_schema = {"type": "object", "properties": {"name": {"type": "string"},
                                                    "stars": {"type": "integer", "minimum": 1, "maximum": 5}},
                   "required": ["name", "stars"]}
    openapi = {"type": "OBJECT", "properties": {"name": {"type": "STRING"}, "note": {"type": "STRING",
                                                                                    "nullable": True}}}
    configs = {"a": {"responseMimeType": "application/json", "responseJsonSchema": json_schema},
               "b": {"response_mime_type": "application/json", "response_schema": openapi},
               "c": {"responseMimeType": "application/json"}}
    lines = [{"key": k, "request": {"contents": [{"role": "user", "parts": [{"text": "lamp"}]}],
                                    "generationConfig": cfg}} for k, cfg in configs.items()]
    client = genai_client(emu)
    job, _ = wait(client, str(client.batches.create(model="gemini-2.5-flash", src=stage(bucket, "s.jsonl", lines),
                                                    config={"dest": f"gs://{bucket.name}/s"}).name))
    texts = {r["key"]: json.loads(r["response"]["candidates"][0]["content"]["parts"][0]["text"])
             for r in output_lines(gcs_emulator, output_folder(job))}
    assert texts["a"]["name"] == "lamp" and 1 <= texts["a"]["stars"] <= 5
    assert texts["b"]["name"] == "lamp" and texts["c"] == {"text": "lamp"}
    client.close()


async def test_genai_async_cancel_keeps_answered_rows(vertex: Callable[..., Emulator], bucket: Any,
                                                      gcs_emulator: LocalGcs) -> None:
    emu = vertex(requests_per_second=200.0, cancelling_seconds=0.1)
    src = stage(bucket, "in/slow.jsonl", [line(f"s{i}", f"t{i}") for i in range(500)])
    client = genai_client(emu).aio
    job = await client.batches.create(model="gemini-2.5-flash", src=src, config={"dest": f"gs://{bucket.name}/c"})
    await asyncio.sleep(0.5)
    await client.batches.cancel(name=str(job.name))
    assert (await client.batches.get(name=str(job.name))).state == types.JobState.JOB_STATE_CANCELLING
    for _ in range(500):
        ended = await client.batches.get(name=str(job.name))
        if ended.state == types.JobState.JOB_STATE_CANCELLED:
            break
        await asyncio.sleep(0.02)
    assert ended.error and ended.error.code == 1
    stats = ended.completion_stats
    done = stats.successful_count if stats else None
    assert stats and done and 0 < done < 500 and stats.incomplete_count == 500 - done
    lines = output_lines(gcs_emulator, output_folder(ended))
    assert len(lines) == stats.successful_count
    with pytest.raises(errors.ClientError) as refused:
        await client.batches.cancel(name=str(job.name))
    assert refused.value.code == 400 and refused.value.status == "FAILED_PRECONDITION"
    await client.batches.delete(name=str(job.name))
    with pytest.raises(errors.ClientError) as gone:
        await client.batches.get(name=str(job.name))
    assert gone.value.code == 404 and gone.value.status == "NOT_FOUND"
    await client.aclose()


def test_expiry_keeps_answered_rows_and_reports_the_rest_incomplete(vertex: Callable[..., Emulator], bucket: Any,
                                                                    gcs_emulator: LocalGcs) -> None:
    emu = vertex(requests_per_second=300.0, expire_after_seconds=0.5)
    client = genai_client(emu)
    src = stage(bucket, "in/long.jsonl", [line(f"e{i}", f"t{i}") for i in range(600)])
    job, seen = wait(client, str(client.batches.create(model="gemini-2.5-flash", src=src,
                                                       config={"dest": f"gs://{bucket.name}/e"}).name))
    assert seen[-2:] == ["JOB_STATE_RUNNING", "JOB_STATE_EXPIRED"]
    stats = job.completion_stats
    assert stats and stats.incomplete_count and stats.successful_count + stats.incomplete_count == 600  # type: ignore[operator]
    assert len(output_lines(gcs_emulator, output_folder(job))) == stats.successful_count
    client.close()


def test_expiry_while_finalizing_does_not_stop_a_job_whose_rows_are_all_answered(
        vertex: Callable[..., Emulator], bucket: Any, gcs_emulator: LocalGcs) -> None:
    """The one expiry rule of every provider: only a job with rows left to answer expires."""
    emu = vertex(requests_per_second=5000.0, finalizing_seconds=1.0, expire_after_seconds=0.5)
    client = genai_client(emu)
    src = stage(bucket, "in/short.jsonl", [line(f"f{i}", f"t{i}") for i in range(10)])
    job, seen = wait(client, str(client.batches.create(model="gemini-2.5-flash", src=src,
                                                       config={"dest": f"gs://{bucket.name}/f"}).name))
    assert seen[-1] == "JOB_STATE_SUCCEEDED"  # rows done at ~0.05 s, expiry at 0.5 s falls in finalizing
    assert job.completion_stats and job.completion_stats.successful_count == 10
    assert len(output_lines(gcs_emulator, output_folder(job))) == 10
    client.close()


def test_unreadable_input_fails_the_job_with_a_reason(vertex: Callable[..., Emulator], bucket: Any) -> None:
    emu = vertex()
    client = genai_client(emu)
    job, _ = wait(client, str(client.batches.create(model="gemini-2.5-flash", src=f"gs://{bucket.name}/none.jsonl",
                                                    config={"dest": f"gs://{bucket.name}/x"}).name))
    assert job.state == types.JobState.JOB_STATE_FAILED and job.error and job.error.code == 5
    assert "does not exist" in str(job.error.message) and job.output_info is None
    client.close()


def test_without_a_storage_endpoint_jobs_fail_clearly(start_emulator: Callable[..., Emulator],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    emu = start_emulator()
    client = genai_client(emu)
    job, _ = wait(client, str(client.batches.create(model="gemini-2.5-flash", src="gs://b/in.jsonl",
                                                    config={"dest": "gs://b/out"}).name))
    assert job.error and job.error.code == 9 and "STORAGE_EMULATOR_HOST" in str(job.error.message)
    client.close()


def test_list_filters_and_pages(vertex: Callable[..., Emulator], bucket: Any) -> None:
    emu = vertex()
    client = genai_client(emu)
    src = stage(bucket, "in/one.jsonl", [line("a", "x")])
    names = []
    for i in range(5):
        labels = types.HttpOptions(extra_body={"labels": {"team": f"t{i % 2}"}})
        config = types.CreateBatchJobConfig(display_name=f"job {i}", dest=f"gs://{bucket.name}/l{i}",
                                            http_options=labels)
        names.append(client.batches.create(model="gemini-2.5-flash", src=src, config=config).name)
    listed = [j.name for j in client.batches.list(config={"page_size": 2})]
    assert listed == names[::-1]  # newest first, across three pages
    assert [j.name for j in client.batches.list(config={"filter": 'labels.team="t1"'})] == [names[3], names[1]]
    assert [j.name for j in client.batches.list(config={"filter": 'display_name="job 2" AND labels.team="t0"'})] == [
        names[2]]
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert list(client.batches.list(config={"filter": f'create_time>="{future}"'})) == []
    with pytest.raises(errors.ClientError, match="unsupported expression"):
        list(client.batches.list(config={"filter": "nonsense ~ 1"}))
    client.close()


async def test_malformed_creates_are_refused_google_style(vertex: Callable[..., Emulator]) -> None:
    emu = vertex()
    url = f"{emu.url}/v1beta1/projects/{PROJECT}/locations/{LOCATION}/batchPredictionJobs"
    valid = {"displayName": "d", "model": "publishers/google/models/gemini-2.5-flash",
             "inputConfig": {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://b/x.jsonl"]}},
             "outputConfig": {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": "gs://b/o"}}}
    broken = [{k: v for k, v in valid.items() if k != "displayName"}, {**valid, "model": "gemini"},
              {**valid, "labels": {"Bad Key": "x"}}, {**valid, "labels": {"k": "UPPER"}},
              {**valid, "inputConfig": {"bigquerySource": {"inputUri": "bq://p.d"}}},
              {**valid, "outputConfig": {"gcsDestination": {"outputUriPrefix": "s3://x"}}}]
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer fake"}) as session:
        for body in broken:
            async with session.post(url, json=body) as response:
                error = (await response.json())["error"]
                assert response.status == 400 and error["status"] == "INVALID_ARGUMENT" and error["code"] == 400
        async with session.get(f"{url}/123") as response:
            assert response.status == 404 and (await response.json())["error"]["status"] == "NOT_FOUND"
    assert emu.stats()["vertex"]["batches_created"] == 0


async def test_api_key_guard_answers_google_shaped_401(vertex: Callable[..., Emulator]) -> None:
    emu = vertex(api_key="secret-token")
    url = f"{emu.url}/v1/projects/{PROJECT}/locations/{LOCATION}/batchPredictionJobs"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401 and (await response.json())["error"]["status"] == "UNAUTHENTICATED"
        async with session.get(url, headers={"Authorization": "Bearer secret-token"}) as response:
            assert response.status == 200


def test_fault_plan_fails_chosen_rows_and_expires_jobs(vertex: Callable[..., Emulator], bucket: Any,
                                                       gcs_emulator: LocalGcs) -> None:
    emu = vertex(requests_per_second=2000.0)
    plan = FaultPlan(row_error_rate=0.2, row_error_code="server_error", expire_batches=1, expire_done_fraction=0.5)
    emu.set_fault_plan(plan)
    keys = [f"f{i}" for i in range(200)]
    client = genai_client(emu)
    src = stage(bucket, "in/plan.jsonl", [line(k, "x") for k in keys])
    job, _ = wait(client, str(client.batches.create(model="gemini-2.5-flash", src=src,
                                                    config={"dest": f"gs://{bucket.name}/p"}).name))
    assert job.state == types.JobState.JOB_STATE_EXPIRED
    lines = output_lines(gcs_emulator, output_folder(job))
    assert len(lines) == 100
    failed = {r["key"] for r in lines if r["status"]}
    assert failed == {r["key"] for r in lines if plan.row_error_selected(r["key"])} and failed
    assert all('"status": "INTERNAL"' in r["status"] for r in lines if r["status"])
    assert emu.stats()["vertex"]["row_errors_injected"] == len(failed)
    client.close()


# -- google-cloud-aiplatform -----------------------------------------------------------------------
@pytest.fixture
def aiplatform_init() -> Iterator[Callable[[Emulator], None]]:
    import vertexai
    from google.cloud.aiplatform import initializer

    def init(emu: Emulator) -> None:
        vertexai.init(project=PROJECT, location=LOCATION, api_endpoint=emu.url, api_transport="rest",
                      credentials=FAKE_TOKEN)

    yield init
    initializer.global_config.__init__()  # type: ignore[misc]  # later tests start from the defaults


def _type(name: str) -> str:
    return {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}.get(name, name)


def seed_requests(bq: LocalBigQuery, table: str, count: int) -> None:
    from google.cloud import bigquery

    rows: list[dict[str, Any]] = [{"key": f"b{i:03d}", "sku": i, "category": "lamps",
             "request": {"contents": [{"role": "user", "parts": [{"text": f"Describe item {i}"}]}]}}
            for i in range(count)]
    rows[4]["request"]["contents"][0]["parts"][0]["text"] += " [[emulator:error:invalid_request_error]]"
    schema = [bigquery.SchemaField("key", "STRING"), bigquery.SchemaField("sku", "INT64"),
              bigquery.SchemaField("category", "STRING"), bigquery.SchemaField("request", "JSON")]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON", schema=schema)
    bq.client().load_table_from_file(io.BytesIO(body), table, job_config=config).result()


def test_aiplatform_job_reads_bigquery_and_writes_a_bigquery_table(
        vertex: Callable[..., Emulator], bq_emulator: LocalBigQuery,
        aiplatform_init: Callable[[Emulator], None]) -> None:
    from google.cloud.aiplatform_v1.types import JobState
    from vertexai.batch_prediction import BatchPredictionJob

    emu = vertex(bq=bq_emulator)
    aiplatform_init(emu)
    dataset = bq_emulator.client().create_dataset(unique_name("vxa")).dataset_id
    seed_requests(bq_emulator, f"{PROJECT}.{dataset}.requests", 50)
    job = BatchPredictionJob.submit(source_model="gemini-2.5-flash", input_dataset=f"bq://{PROJECT}.{dataset}.requests",
                                    output_uri_prefix=f"bq://{PROJECT}.{dataset}", job_display_name="from-bq")
    deadline = time.monotonic() + 20
    while job.state.name not in ENDED:  # `has_ended` misses PARTIALLY_SUCCEEDED and EXPIRED
        assert time.monotonic() < deadline and not job.has_ended
        time.sleep(0.05)
        job.refresh()
    assert job.state == JobState.JOB_STATE_PARTIALLY_SUCCEEDED  # sent as an enum number, parsed by the SDK
    assert not job.has_ended
    stats = job._gca_resource.completion_stats
    assert (stats.successful_count, stats.failed_count, stats.incomplete_count) == (49, 1, 0)
    info = job._gca_resource.output_info
    assert info.bigquery_output_dataset == f"bq://{PROJECT}.{dataset}"
    assert job.output_location == info.bigquery_output_table
    table = bq_emulator.client().get_table(f"{PROJECT}.{dataset}.{info.bigquery_output_table}")
    assert [(f.name, _type(f.field_type)) for f in table.schema] == [
        ("key", "STRING"), ("sku", "INT64"), ("category", "STRING"), ("request", "JSON"), ("response", "JSON"),
        ("status", "STRING"), ("processed_time", "TIMESTAMP")]
    rows = {r["key"]: dict(r.items()) for r in bq_emulator.client().list_rows(table)}
    assert len(rows) == 50 and rows["b007"]["sku"] == 7 and rows["b007"]["category"] == "lamps"
    answer = rows["b007"]["response"]
    answer = json.loads(answer) if isinstance(answer, str) else answer
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == "Describe item 7"
    assert rows["b004"]["status"].startswith("Bad Request: ") and rows["b004"]["response"] is None
    assert [j.resource_name for j in BatchPredictionJob.list(filter='display_name="from-bq"')] == [job.resource_name]
    job.delete()  # type: ignore[no-untyped-call]  # untyped in aiplatform
    assert BatchPredictionJob.list(filter='display_name="from-bq"') == []


def test_aiplatform_gcs_input_bigquery_output_infers_passthrough_columns(
        vertex: Callable[..., Emulator], bq_emulator: LocalBigQuery, bucket: Any,
        aiplatform_init: Callable[[Emulator], None]) -> None:
    from google.cloud.aiplatform_v1.types import JobState
    from vertexai.batch_prediction import BatchPredictionJob

    emu = vertex(bq=bq_emulator)
    aiplatform_init(emu)
    dataset = bq_emulator.client().create_dataset(unique_name("vxg")).dataset_id
    src = stage(bucket, "in/g.jsonl", [line(f"g{i}", f"t{i}", price=1.5 * i, tags=["a"]) for i in range(10)])
    job = BatchPredictionJob.submit(source_model="publishers/google/models/gemini-2.5-flash", input_dataset=src,
                                    output_uri_prefix=f"bq://{PROJECT}.{dataset}.answers")
    while not job.has_ended:
        time.sleep(0.05)
        job.refresh()
    assert job.state == JobState.JOB_STATE_SUCCEEDED
    table = bq_emulator.client().get_table(f"{PROJECT}.{dataset}.answers")
    assert {f.name: _type(f.field_type) for f in table.schema} == {
        "key": "STRING", "price": "FLOAT64", "tags": "JSON", "request": "JSON", "response": "JSON", "status": "STRING",
        "processed_time": "TIMESTAMP"}
    assert sorted(r["key"] for r in bq_emulator.client().list_rows(table)) == sorted(f"g{i}" for i in range(10))


def test_aiplatform_cancel_and_missing_request_column(vertex: Callable[..., Emulator], bq_emulator: LocalBigQuery,
                                                      bucket: Any, aiplatform_init: Callable[[Emulator], None]) -> None:
    from google.cloud import bigquery
    from google.cloud.aiplatform_v1.types import JobState
    from vertexai.batch_prediction import BatchPredictionJob

    emu = vertex(bq=bq_emulator, requests_per_second=100.0)
    aiplatform_init(emu)
    src = stage(bucket, "in/c.jsonl", [line(f"c{i}", "x") for i in range(300)])
    running = BatchPredictionJob.submit(source_model="gemini-2.5-flash", input_dataset=src,
                                        output_uri_prefix=f"gs://{bucket.name}/ac")
    running.cancel()  # type: ignore[no-untyped-call]  # untyped in aiplatform
    deadline = time.monotonic() + 10
    while not running.has_ended:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        running.refresh()
    assert running.state == JobState.JOB_STATE_CANCELLED and running.error is not None and running.error.code == 1

    dataset = bq_emulator.client().create_dataset(unique_name("vxm")).dataset_id
    bq_emulator.client().create_table(bigquery.Table(f"{PROJECT}.{dataset}.no_request",
                                                     schema=[bigquery.SchemaField("key", "STRING")]))
    failing = BatchPredictionJob.submit(source_model="gemini-2.5-flash",
                                        input_dataset=f"bq://{PROJECT}.{dataset}.no_request",
                                        output_uri_prefix=f"bq://{PROJECT}.{dataset}")
    while not failing.has_ended:
        time.sleep(0.05)
        failing.refresh()
    assert failing.state == JobState.JOB_STATE_FAILED and failing.error is not None and failing.error.code == 3
    assert "no 'request' column" in failing.error.message
