"""RawResult: made with a Usage or a plain (input, output, cached) tuple, read back as a Usage; a held
answer is one object for the cyclic garbage collector to walk, not two."""

from __future__ import annotations

import gc

from airflow_llm_batch.backends.openai import decode_output_line
from airflow_llm_batch.pipeline.types import FinishReason, RawResult, Usage


def test_usage_given_as_a_usage_or_a_tuple_reads_back_as_a_usage() -> None:
    by_usage = RawResult("c1", ok=True, text="hi", usage=Usage(5, 2, 1), finish_reason=FinishReason.STOP)
    by_tuple = RawResult("c1", True, "hi", None, None, (5, 2, 1), None, None, FinishReason.STOP)
    assert by_usage == by_tuple
    assert by_usage.usage == Usage(5, 2, 1) and by_usage.usage.total_tokens == 7
    assert RawResult("c2", ok=False, error_code="server_error").usage == Usage()
    assert (by_usage.custom_id, by_usage.ok, by_usage.text, by_usage.error_code) == ("c1", True, "hi", None)


def test_a_decoded_answer_leaves_one_object_for_the_garbage_collector() -> None:
    line = {"custom_id": "c1", "response": {"status_code": 200, "body": {
        "model": "gpt-4o-mini", "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 400, "prompt_tokens_details": {"cached_tokens": 0}}}}}
    answer = decode_output_line(line)
    gc.collect()  # a plain tuple of ints is dropped from the collector's watch when it is next walked
    assert answer.usage == Usage(300, 400, 0)
    tracked = [field for field in answer if gc.is_tracked(field)]
    assert tracked == [FinishReason.STOP]  # shared by every answer: nothing tracked is made per answer
    assert not gc.is_tracked(answer.tokens)
