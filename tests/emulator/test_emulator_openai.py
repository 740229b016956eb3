"""The official openai SDK (sync client), unchanged, against the emulated Files and Batch APIs."""

from __future__ import annotations

import base64
import enum
import json
import math
import struct
import time
from typing import Any, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from airflow_llm_batch.emulator import Emulator

CHAT: Literal["/v1/chat/completions"] = "/v1/chat/completions"


class Sentiment(str, enum.Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    NEUTRAL = "neutral"


class Detail(BaseModel):
    summary: str = Field(max_length=12)
    confident: bool


class Review(BaseModel):
    sentiment: Sentiment
    stars: int = Field(ge=1, le=5)
    detail: Detail


def _schema_format() -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": "review", "schema": Review.model_json_schema(), "strict": True},
    }


# ----------------------------------------------------------------------------------- round trips
def test_chat_batch_round_trip_joined_by_custom_id(oai: openai.OpenAI, h: Any) -> None:
    records = [h.chat_line(f"row-{i}", f"question number {i}") for i in range(20)]
    batch = h.run_openai_batch(oai, records, CHAT)
    assert batch.status == "completed"
    assert batch.request_counts.total == 20 and batch.request_counts.completed == 20
    assert batch.request_counts.failed == 0
    assert batch.error_file_id is None
    assert batch.model == "gpt-4o-mini"
    assert batch.expires_at == batch.created_at + 24 * 3600
    assert (
        batch.in_progress_at is not None
        and batch.finalizing_at is not None
        and batch.completed_at is not None
    )
    lines = h.parse_jsonl(oai.files.content(batch.output_file_id).content)
    by_id = {line["custom_id"]: line for line in lines}
    assert set(by_id) == {f"row-{i}" for i in range(20)}
    prompt_total = completion_total = 0
    for i in range(20):
        line = by_id[f"row-{i}"]
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200
        completion = openai.types.chat.ChatCompletion.model_validate(line["response"]["body"])
        assert completion.choices[0].message.content == f"question number {i}"
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None
        assert (
            completion.usage.total_tokens
            == completion.usage.prompt_tokens + completion.usage.completion_tokens
        )
        prompt_total += completion.usage.prompt_tokens
        completion_total += completion.usage.completion_tokens
    assert batch.usage is not None
    assert batch.usage.input_tokens == prompt_total
    assert batch.usage.output_tokens == completion_total
    assert batch.usage.total_tokens == prompt_total + completion_total
    output_file = oai.files.retrieve(batch.output_file_id)
    assert output_file.purpose == "batch_output"


def test_output_order_is_not_input_order(oai: openai.OpenAI, h: Any) -> None:
    ids = [f"r{i:03d}" for i in range(50)]
    batch = h.run_openai_batch(oai, [h.chat_line(i, i) for i in ids], CHAT)
    output_ids = [
        line["custom_id"] for line in h.parse_jsonl(oai.files.content(batch.output_file_id).content)
    ]
    assert sorted(output_ids) == ids
    assert output_ids != ids


def test_responses_batch_round_trip(oai: openai.OpenAI, h: Any) -> None:
    records = [
        {
            "custom_id": "plain",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "gpt-4.1-mini", "input": "tell me", "instructions": "be short"},
        },
        {
            "custom_id": "messages",
            "method": "POST",
            "url": "/v1/responses",
            "body": {
                "model": "gpt-4.1-mini",
                "input": [
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
                ],
            },
        },
        {
            "custom_id": "schema",
            "method": "POST",
            "url": "/v1/responses",
            "body": {
                "model": "gpt-4.1-mini",
                "input": "great product",
                "text": {
                    "format": {"type": "json_schema", "name": "review", "schema": Review.model_json_schema()}
                },
            },
        },
    ]
    batch = h.run_openai_batch(oai, records, "/v1/responses")
    assert batch.status == "completed" and batch.request_counts.completed == 3
    by_id = {
        line["custom_id"]: line for line in h.parse_jsonl(oai.files.content(batch.output_file_id).content)
    }
    plain = openai.types.responses.Response.model_validate(by_id["plain"]["response"]["body"])
    assert plain.output_text == "tell me"
    assert plain.status == "completed"
    assert plain.usage is not None and plain.usage.input_tokens > plain.usage.output_tokens
    second = openai.types.responses.Response.model_validate(by_id["messages"]["response"]["body"])
    assert second.output_text == "second"
    structured = openai.types.responses.Response.model_validate(by_id["schema"]["response"]["body"])
    Review.model_validate_json(structured.output_text)


def test_embeddings_batch_round_trip(oai: openai.OpenAI, h: Any) -> None:
    records = [
        {
            "custom_id": "one",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": "alpha"},
        },
        {
            "custom_id": "many",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": ["alpha", "beta"], "dimensions": 8},
        },
        {
            "custom_id": "b64",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": "alpha", "encoding_format": "base64"},
        },
    ]
    batch = h.run_openai_batch(oai, records, "/v1/embeddings")
    assert batch.status == "completed"
    by_id = {
        line["custom_id"]: line for line in h.parse_jsonl(oai.files.content(batch.output_file_id).content)
    }
    one = openai.types.CreateEmbeddingResponse.model_validate(by_id["one"]["response"]["body"])
    vector = one.data[0].embedding
    assert len(vector) == 16
    assert math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-9)
    many = openai.types.CreateEmbeddingResponse.model_validate(by_id["many"]["response"]["body"])
    assert [d.index for d in many.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in many.data)
    assert many.data[0].embedding != many.data[1].embedding
    assert many.usage.prompt_tokens == many.usage.total_tokens == 1 + 1  # "alpha", "beta" (cl100k_base)
    raw = base64.b64decode(by_id["b64"]["response"]["body"]["data"][0]["embedding"])
    decoded = struct.unpack("<16f", raw)
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, vector, strict=True))


def test_completions_and_moderations_endpoints(oai: openai.OpenAI, h: Any) -> None:
    completions = h.run_openai_batch(
        oai,
        [
            {
                "custom_id": "c",
                "method": "POST",
                "url": "/v1/completions",
                "body": {"model": "gpt-3.5-turbo-instruct", "prompt": "once"},
            }
        ],
        "/v1/completions",
    )
    body = h.parse_jsonl(oai.files.content(completions.output_file_id).content)[0]["response"]["body"]
    assert openai.types.Completion.model_validate(body).choices[0].text == "once"
    moderations = h.run_openai_batch(
        oai,
        [{"custom_id": "m", "method": "POST", "url": "/v1/moderations", "body": {"input": ["a", "b"]}}],
        "/v1/moderations",
    )
    body = h.parse_jsonl(oai.files.content(moderations.output_file_id).content)[0]["response"]["body"]
    assert [r.flagged for r in openai.types.ModerationCreateResponse.model_validate(body).results] == [
        False,
        False,
    ]


# ------------------------------------------------------------------------------ model behaviour
def test_json_schema_answers_validate_with_the_pydantic_model(oai: openai.OpenAI, h: Any) -> None:
    records = [h.chat_line(f"s{i}", f"review text {i}", response_format=_schema_format()) for i in range(30)]
    records.append(h.chat_line("json-mode", "free json", response_format={"type": "json_object"}))
    batch = h.run_openai_batch(oai, records, CHAT)
    by_id = {
        line["custom_id"]: line for line in h.parse_jsonl(oai.files.content(batch.output_file_id).content)
    }
    reviews = []
    for i in range(30):
        content = by_id[f"s{i}"]["response"]["body"]["choices"][0]["message"]["content"]
        reviews.append(Review.model_validate_json(content))
    assert {r.sentiment for r in reviews} == set(Sentiment)
    assert all(1 <= r.stars <= 5 for r in reviews)
    assert reviews[3].detail.summary == "review text 3"[:12]
    json_mode = by_id["json-mode"]["response"]["body"]["choices"][0]["message"]["content"]
    assert json.loads(json_mode) == {"text": "free json"}


def test_answers_are_deterministic_across_batches(oai: openai.OpenAI, h: Any) -> None:
    records = [h.chat_line("same", "stable prompt", response_format=_schema_format())]
    outputs = []
    for _ in range(2):
        batch = h.run_openai_batch(oai, records, CHAT)
        line = h.parse_jsonl(oai.files.content(batch.output_file_id).content)[0]
        outputs.append(line["response"]["body"]["choices"][0]["message"]["content"])
    assert outputs[0] == outputs[1]


def test_error_markers_go_to_the_error_file(oai: openai.OpenAI, h: Any) -> None:
    records = [
        h.chat_line("ok", "fine"),
        h.chat_line("limited", "x [[emulator:error:rate_limit_exceeded]]"),
        h.chat_line("broken", "[[emulator:error:server_error]]"),
        h.chat_line("invalid", "[[emulator:error:context_length_exceeded]]"),
        h.chat_line("cut", "abcdefgh [[emulator:truncate]]"),
        {"custom_id": "no-messages", "method": "POST", "url": CHAT, "body": {"model": "gpt-4o-mini"}},
    ]
    batch = h.run_openai_batch(oai, records, CHAT)
    assert batch.status == "completed"
    assert batch.request_counts.completed == 2 and batch.request_counts.failed == 4
    output = {
        line["custom_id"]: line for line in h.parse_jsonl(oai.files.content(batch.output_file_id).content)
    }
    errors = {
        line["custom_id"]: line for line in h.parse_jsonl(oai.files.content(batch.error_file_id).content)
    }
    assert set(output) == {"ok", "cut"}
    assert set(errors) == {"limited", "broken", "invalid", "no-messages"}
    expected = {"limited": 429, "broken": 500, "invalid": 400, "no-messages": 400}
    for custom_id, status in expected.items():
        response = errors[custom_id]["response"]
        assert response["status_code"] == status
        assert set(response["body"]["error"]) == {"message", "type", "param", "code"}
    assert errors["limited"]["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    assert errors["broken"]["response"]["body"]["error"]["type"] == "server_error"
    assert errors["no-messages"]["response"]["body"]["error"]["param"] == "messages"
    cut = output["cut"]["response"]["body"]["choices"][0]
    full = "abcdefgh [[emulator:truncate]]"
    assert cut["finish_reason"] == "length"
    assert cut["message"]["content"] == full[: len(full) // 2]


def test_errors_in_output_file_option(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(errors_in_output_file=True)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        batch = h.run_openai_batch(
            client, [h.chat_line("a", "ok"), h.chat_line("b", "[[emulator:error:server_error]]")], CHAT
        )
        assert batch.error_file_id is None
        lines = h.parse_jsonl(client.files.content(batch.output_file_id).content)
        assert sorted(line["response"]["status_code"] for line in lines) == [200, 500]


def test_all_rows_failed_still_completes_without_output_file(oai: openai.OpenAI, h: Any) -> None:
    batch = h.run_openai_batch(oai, [h.chat_line("x", "[[emulator:error:server_error]]")], CHAT)
    assert batch.status == "completed"
    assert batch.output_file_id is None and batch.error_file_id is not None
    assert batch.request_counts.failed == 1


def test_a_thousand_requests_complete_at_default_pace(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(validating_seconds=0.3, requests_per_second=1000.0, finalizing_seconds=0.2)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        batch = h.run_openai_batch(client, [h.chat_line(f"k{i}", f"text {i}") for i in range(1000)], CHAT)
        assert batch.status == "completed"
        assert batch.request_counts.completed == 1000
        assert len(h.parse_jsonl(client.files.content(batch.output_file_id).content)) == 1000


def test_fifty_thousand_lines_are_handled(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(requests_per_second=1_000_000.0)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0, timeout=120) as client:
        records = [h.chat_line(f"id-{i}", f"row {i}") for i in range(50_000)]
        batch = h.run_openai_batch(client, records, CHAT)
        assert batch.status == "completed"
        assert batch.request_counts.completed == 50_000
        content = client.files.content(batch.output_file_id).content
        assert content.count(b"\n") == 50_000


def test_progress_grows_while_in_progress(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(validating_seconds=0.1, requests_per_second=100.0)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        uploaded = client.files.create(
            file=("in.jsonl", h.jsonl(h.chat_line(f"p{i}", "t") for i in range(100))), purpose="batch"
        )
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
        assert batch.status == "validating"
        assert batch.request_counts is not None and batch.request_counts.total == 0
        seen: list[tuple[str, int]] = []
        while batch.status not in ("completed", "failed"):
            time.sleep(0.05)
            batch = client.batches.retrieve(batch.id)
            assert batch.request_counts is not None
            seen.append((batch.status, batch.request_counts.completed))
        statuses = [status for status, _ in seen]
        assert "in_progress" in statuses
        progress = [done for status, done in seen if status == "in_progress"]
        assert progress == sorted(progress)
        assert any(0 < done < 100 for done in progress)
        assert batch.status == "completed"


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("records", "code", "line"),
    [
        pytest.param(["{not json"], "invalid_json_line", 1, id="bad-json"),
        pytest.param(
            [{"custom_id": "a", "method": "POST", "url": CHAT}], "missing_required_parameter", 1, id="no-body"
        ),
        pytest.param(
            [
                {"custom_id": "a", "method": "POST", "url": CHAT, "body": {"model": "m", "messages": []}},
                {"custom_id": "a", "method": "POST", "url": CHAT, "body": {"model": "m", "messages": []}},
            ],
            "duplicate_custom_id",
            2,
            id="duplicate",
        ),
        pytest.param(
            [{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}],
            "invalid_url",
            1,
            id="other-url",
        ),
        pytest.param(
            [{"custom_id": "a", "method": "POST", "url": "/v1/unknown", "body": {"model": "m"}}],
            "invalid_url",
            1,
            id="unknown-url",
        ),
        pytest.param(
            [{"custom_id": "a", "method": "GET", "url": CHAT, "body": {"model": "m"}}],
            "invalid_method",
            1,
            id="get",
        ),
        pytest.param(
            [
                {"custom_id": "a", "method": "POST", "url": CHAT, "body": {"model": "m1", "messages": []}},
                {"custom_id": "b", "method": "POST", "url": CHAT, "body": {"model": "m2", "messages": []}},
            ],
            "mismatched_model",
            2,
            id="two-models",
        ),
        pytest.param([], "empty_file", None, id="empty"),
    ],
)
def test_invalid_input_files_fail_the_batch(
    oai: openai.OpenAI, h: Any, records: list[Any], code: str, line: int | None
) -> None:
    batch = h.run_openai_batch(oai, records, CHAT)
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.errors is not None and batch.errors.data
    assert batch.errors.data[0].code == code
    assert batch.errors.data[0].line == line
    assert batch.output_file_id is None and batch.error_file_id is None


def test_too_many_requests_and_file_too_large(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(max_requests_per_batch=3, max_batch_file_bytes=2000)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        ok = h.run_openai_batch(client, [h.chat_line(f"a{i}", "x") for i in range(3)], CHAT)
        assert ok.status == "completed"
        too_many = h.run_openai_batch(client, [h.chat_line(f"a{i}", "x") for i in range(4)], CHAT)
        assert too_many.status == "failed"
        assert [e.code for e in too_many.errors.data] == ["too_many_requests"]
        too_big = h.run_openai_batch(client, [h.chat_line("big", "y" * 3000)], CHAT)
        assert too_big.status == "failed"
        assert [e.code for e in too_big.errors.data] == ["file_too_large"]


def test_embedding_input_limit(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(max_embedding_inputs_per_batch=3)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        records = [
            {
                "custom_id": f"e{i}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "text-embedding-3-small", "input": ["a", "b"]},
            }
            for i in range(2)
        ]
        batch = h.run_openai_batch(client, records, "/v1/embeddings")
        assert batch.status == "failed"
        assert batch.errors.data[0].code == "too_many_embedding_inputs"


def test_enqueued_token_limit(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(enqueued_token_limit=40, requests_per_second=5.0)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:

        def create(prefix: str) -> Any:
            uploaded = client.files.create(
                file=("in.jsonl", h.jsonl(h.chat_line(f"{prefix}{i}", "x" * 40) for i in range(3))),
                purpose="batch",
            )
            return client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")

        first = create("a")  # 3 * (5 + 3) = 24 tokens enqueued (40 x's are 5 cl100k_base tokens)
        second = create("b")  # 24 more: over the limit of 40 while the first one runs
        assert h.wait_openai(client, second.id).errors.data[0].code == "token_limit_exceeded"
        client.batches.cancel(first.id)
        assert h.wait_openai(client, first.id).status == "cancelled"
        assert h.wait_openai(client, create("c").id).status == "completed"


def test_create_rejects_bad_arguments_immediately(oai: openai.OpenAI, h: Any) -> None:
    uploaded = oai.files.create(file=("in.jsonl", h.jsonl([h.chat_line("a", "b")])), purpose="batch")
    with pytest.raises(openai.BadRequestError) as unknown_file:
        oai.batches.create(input_file_id="file-does-not-exist", endpoint=CHAT, completion_window="24h")
    assert unknown_file.value.body["param"] == "input_file_id"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        oai.batches.create(input_file_id=uploaded.id, endpoint="/v1/not-an-endpoint", completion_window="24h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        oai.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="48h")  # type: ignore[arg-type]
    for metadata in ({f"k{i}": "v" for i in range(17)}, {"k" * 65: "v"}, {"k": "v" * 513}):
        with pytest.raises(openai.BadRequestError) as bad_metadata:
            oai.batches.create(
                input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h", metadata=metadata
            )
        assert bad_metadata.value.body["param"] == "metadata"  # type: ignore[index]
    user_data = oai.files.create(file=("in.jsonl", b"{}"), purpose="user_data")
    with pytest.raises(openai.BadRequestError):
        oai.batches.create(input_file_id=user_data.id, endpoint=CHAT, completion_window="24h")
    kept = oai.batches.create(
        input_file_id=uploaded.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={f"k{i}": "v" * 512 for i in range(16)},
    )
    assert kept.metadata == {f"k{i}": "v" * 512 for i in range(16)}


def test_unknown_ids_are_404_with_openai_error_body(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing_batch:
        oai.batches.retrieve("batch_nope")
    assert missing_batch.value.body == {
        "message": "No batch found with id 'batch_nope'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        oai.files.content("file-nope")
    with pytest.raises(openai.NotFoundError):
        oai.batches.cancel("batch_nope")


# -------------------------------------------------------------------------- files, list, cancel
def test_files_api(oai: openai.OpenAI, h: Any) -> None:
    data = h.jsonl([h.chat_line("a", "b")])
    uploaded = oai.files.create(file=("my-input.jsonl", data), purpose="batch")
    assert uploaded.id.startswith("file-")
    assert uploaded.filename == "my-input.jsonl" and uploaded.bytes == len(data)
    assert uploaded.purpose == "batch" and uploaded.status == "processed"
    assert oai.files.retrieve(uploaded.id).id == uploaded.id
    assert oai.files.content(uploaded.id).content == data
    assert uploaded.id in {f.id for f in oai.files.list(purpose="batch")}
    deleted = oai.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve(uploaded.id)
    with pytest.raises(openai.BadRequestError):
        oai.files.create(file=("x.jsonl", data), purpose="not-a-purpose")  # type: ignore[arg-type]


def test_list_paginates_newest_first(start_emulator: Any, h: Any) -> None:
    emu = start_emulator()
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        uploaded = client.files.create(file=("in.jsonl", h.jsonl([h.chat_line("a", "b")])), purpose="batch")
        created = [
            client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h").id
            for _ in range(7)
        ]
        first_page = client.batches.list(limit=3)
        assert [b.id for b in first_page.data] == created[::-1][:3]
        assert first_page.has_more is True
        second_page = client.batches.list(limit=3, after=first_page.data[-1].id)
        assert [b.id for b in second_page.data] == created[::-1][3:6]
        assert [b.id for b in client.batches.list(limit=3)] == created[::-1]  # auto-pagination
        last = client.batches.list(limit=3, after=created[1])
        assert [b.id for b in last.data] == [created[0]] and last.has_more is False
        with pytest.raises(openai.BadRequestError):
            client.batches.list(limit=101)


def test_cancel_keeps_answered_rows_only(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(validating_seconds=0.0, requests_per_second=20.0, cancelling_seconds=0.1)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        uploaded = client.files.create(
            file=("in.jsonl", h.jsonl(h.chat_line(f"c{i}", "t") for i in range(100))), purpose="batch"
        )
        batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
        time.sleep(0.3)
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
        assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")  # idempotent
        final = h.wait_openai(client, batch.id)
        assert final.status == "cancelled" and final.cancelled_at is not None
        done = final.request_counts.completed
        assert 0 < done < 100
        assert len(h.parse_jsonl(client.files.content(final.output_file_id).content)) == done
        assert final.error_file_id is None


def test_cancel_of_a_completed_batch_is_rejected(oai: openai.OpenAI, h: Any) -> None:
    batch = h.run_openai_batch(oai, [h.chat_line("a", "b")], CHAT)
    with pytest.raises(openai.BadRequestError):
        oai.batches.cancel(batch.id)


def test_expired_batch_keeps_answers_and_reports_the_rest(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(validating_seconds=0.0, requests_per_second=50.0, expire_after_seconds=0.5)
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        batch = h.run_openai_batch(client, [h.chat_line(f"e{i}", "t") for i in range(100)], CHAT)
        assert batch.status == "expired" and batch.expired_at is not None
        assert batch.expires_at - batch.created_at in (0, 1)  # expire_after_seconds, not 24 h
        answered = h.parse_jsonl(client.files.content(batch.output_file_id).content)
        expired = h.parse_jsonl(client.files.content(batch.error_file_id).content)
        assert len(answered) == batch.request_counts.completed
        assert 0 < len(answered) < 100
        assert len(answered) + len(expired) == 100
        assert {line["custom_id"] for line in answered} | {line["custom_id"] for line in expired} == {
            f"e{i}" for i in range(100)
        }
        assert all(line["response"] is None and line["error"]["code"] == "batch_expired" for line in expired)


# ---------------------------------------------------------------------------------- server-wide
def test_stats_count_each_submission(start_emulator: Any, h: Any) -> None:
    emu: Emulator = start_emulator()
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        h.run_openai_batch(client, [h.chat_line("a", "x"), h.chat_line("b", "y")], CHAT)
        h.run_openai_batch(client, [h.chat_line("a", "x")], CHAT)
        failed = h.run_openai_batch(client, [h.chat_line("c", "x"), h.chat_line("c", "x")], CHAT)
        assert failed.status == "failed"
        stats = emu.stats()["openai"]
        assert stats["batches_created"] == 3
        assert stats["files_uploaded"] == 3
        assert stats["requests_by_custom_id"] == {"a": 2, "b": 1, "c": 2}
        assert stats["accepted_requests_by_custom_id"] == {"a": 2, "b": 1}
        assert stats["batches_failed_validation"] == 1
        assert len(stats["batches"]) == 3
        assert httpx.get(emu.url + "/_emulator/stats").json()["openai"] == stats
        emu.reset_stats()
        assert emu.stats()["openai"]["requests_by_custom_id"] == {}
        assert emu.stats()["openai"]["batches_created"] == 0


def test_api_key_is_enforced(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(api_key="sekret")
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as denied:
            bad.batches.list()
        assert denied.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="sekret", max_retries=0) as good:
        assert good.batches.list().data == []
    assert httpx.get(emu.openai_base_url + "/batches", headers={"x-api-key": "sekret"}).status_code == 200
    assert httpx.get(emu.openai_base_url + "/batches").status_code == 401


def test_binds_loopback_by_default(emulator: Emulator) -> None:
    assert emulator.config.host == "127.0.0.1"
    assert emulator.url.startswith("http://127.0.0.1:")
    assert emulator.openai_base_url == emulator.url + "/v1"
    assert emulator.anthropic_base_url == emulator.url


def test_injected_faults_hit_the_next_matching_requests(start_emulator: Any) -> None:
    emu: Emulator = start_emulator()
    emu.inject_fault(503, count=2, path_prefix="/v1/batches", method="GET")
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError) as failure:
                client.batches.list()
            assert failure.value.status_code == 503
        assert client.batches.list().data == []
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=2) as retrying:
        emu.inject_fault(500, count=1, path_prefix="/v1/batches")
        assert retrying.batches.list().data == []  # the SDK's retry gets through


def test_unknown_route_answers_json(emulator: Emulator) -> None:
    response = httpx.get(emulator.openai_base_url + "/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_azure_openai_client_works_on_the_openai_prefix(start_emulator: Any, h: Any) -> None:
    emu = start_emulator(api_key="azure-key")
    with openai.AzureOpenAI(
        azure_endpoint=emu.url, api_key="azure-key", api_version="2024-10-21", max_retries=0
    ) as azure:
        records = [
            {
                "custom_id": f"az{i}",
                "method": "POST",
                "url": "/chat/completions",
                "body": {"model": "my-deployment", "messages": [{"role": "user", "content": f"azure {i}"}]},
            }
            for i in range(3)
        ]
        uploaded = azure.files.create(file=("in.jsonl", h.jsonl(records)), purpose="batch")
        created = azure.batches.create(
            input_file_id=uploaded.id,
            endpoint="/chat/completions",  # type: ignore[arg-type]  # Azure style, without /v1
            completion_window="24h",
        )
        batch = h.wait_openai(azure, created.id)
        assert batch.status == "completed" and batch.endpoint == "/chat/completions"
        answers = {
            line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"]
            for line in h.parse_jsonl(azure.files.content(batch.output_file_id).content)
        }
        assert answers == {f"az{i}": f"azure {i}" for i in range(3)}


def test_lost_response_fault_creates_the_batch_but_fails_the_call(start_emulator: Any, h: Any) -> None:
    emu: Emulator = start_emulator()
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as client:
        uploaded = client.files.create(
            file=("in.jsonl", h.jsonl([h.chat_line("once", "x")])), purpose="batch"
        )
        emu.inject_fault(504, path_prefix="/v1/batches", method="POST", lose_response=True)
        with pytest.raises(openai.APIStatusError) as lost:
            client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
        assert lost.value.status_code == 504
        listed = client.batches.list().data
        assert len(listed) == 1 and listed[0].input_file_id == uploaded.id
        assert emu.stats()["openai"]["requests_by_custom_id"] == {"once": 1}
