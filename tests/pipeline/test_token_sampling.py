"""The calibrated token estimate (token_sampling.py): an over-estimate within a few percent on a realistic
corpus, never above the bytes bound, and exact wherever a budget is checked (rows and chunks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI

from airflow_llm_batch.backends.openai import OpenAIBatchBackend
from airflow_llm_batch.exceptions import InvalidInputError
from airflow_llm_batch.pipeline import fast_json
from airflow_llm_batch.pipeline.prepare import PrepareOptions, prepare
from airflow_llm_batch.pipeline.render import RequestRenderer, RequestSpec
from airflow_llm_batch.pipeline.token_count import count_text_tokens
from airflow_llm_batch.pipeline.token_sampling import EXACT_ROWS, SampledCount
from airflow_llm_batch.pipeline.tokens import estimate_tokens
from tests.pipeline.token_corpus import adversarial, realistic

SPEC = RequestSpec(model="gpt-4o-mini", prompt="{{ row.text }}", key="id")


def backend() -> OpenAIBatchBackend:
    return OpenAIBatchBackend(AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0))


def rows_of(texts: list[str]) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "text": text} for i, text in enumerate(texts)]


def written(folder: Path, chunk: Any) -> list[bytes]:
    return (folder / chunk.requests).read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("corpus", [realistic(6_000), adversarial(6_000)], ids=["realistic", "adversarial"])
def test_the_estimate_is_over_the_exact_sum_by_a_few_percent(corpus: list[str]) -> None:
    sampled = SampledCount(count_text_tokens)
    estimate = sum(sampled.tokens(text, len(text.encode())) for text in corpus)
    exact = sum(count_text_tokens(text) for text in corpus)
    assert exact <= estimate <= exact * 1.12


def test_the_prepared_chunk_tokens_cover_the_exact_count_of_their_lines(tmp_path: Path) -> None:
    prepared = prepare(rows_of(realistic(3_000)), SPEC, folder=tmp_path, backend=backend(),
                       options=PrepareOptions(max_rows_per_chunk=1_000))
    exact = [sum(estimate_tokens(line) for line in written(tmp_path, chunk)) for chunk in prepared.chunks]
    estimated = [chunk.tokens for chunk in prepared.chunks]
    assert len(estimated) == 3 and sum(exact) <= sum(estimated) <= sum(exact) * 1.12
    assert estimated[0] >= exact[0]  # its first EXACT_ROWS rows are exact, the rest estimated


def test_an_estimate_is_never_above_the_bytes_bound_and_the_first_rows_are_exact() -> None:
    sampled = SampledCount(lambda text: len(text.encode()), exact_rows=4, every=1_000, margin=3.0)
    counts = [sampled.tokens("é" * 10, 20) for _ in range(10)]
    assert counts[:4] == [20] * 4 and all(count <= 20 for count in counts)
    sampled = SampledCount(count_text_tokens)
    texts = realistic(EXACT_ROWS + 40)
    counts = [sampled.tokens(text, len(text.encode())) for text in texts]
    assert counts[:EXACT_ROWS] == [count_text_tokens(text) for text in texts[:EXACT_ROWS]]
    assert sampled.tokens(texts[-1], len(texts[-1].encode()), exact=True) == count_text_tokens(texts[-1])


def test_with_a_budget_no_chunk_holds_more_than_it_by_exact_count(tmp_path: Path) -> None:
    """Short English rows teach a low ratio, then long CJK/emoji/digit rows follow: chunks are still
    planned by exact counts, and the chunk's figure is that exact count."""
    budget = 20_000
    prepared = prepare(rows_of(adversarial(4_000)), SPEC, folder=tmp_path, backend=backend(),
                       options=PrepareOptions(max_tokens_per_chunk=budget))
    assert len(prepared.chunks) > 5
    for chunk in prepared.chunks:
        exact = sum(estimate_tokens(line) for line in written(tmp_path, chunk))
        assert exact == chunk.tokens <= budget


def test_a_row_over_the_budget_is_refused_with_its_exact_count(tmp_path: Path) -> None:
    texts = realistic(EXACT_ROWS + 100)
    big = "日本語のテキスト 🎉 " * 200
    rows = [*rows_of(texts), {"id": "big", "text": big}]
    with pytest.raises(InvalidInputError) as caught:
        prepare(rows, SPEC, folder=tmp_path, backend=backend(), options=PrepareOptions(max_tokens_per_chunk=2_000))
    document = backend().request_line(RequestRenderer(SPEC).fixed_request("big", "big", big))
    exact = estimate_tokens(fast_json.dumps_line(document))
    assert f"request is ~{exact:,} tokens, over the enqueued-token budget of 2,000" in str(caught.value)

