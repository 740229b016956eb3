"""Token counts from bpe-openai's compiled counter: the same numbers as its public encoder."""

from __future__ import annotations

import subprocess
import sys

from airflow_llm_batch.pipeline.token_count import ENCODING, count_text_tokens, tokenizer_name

TEXTS = ["", " ", "The quick brown fox jumps over the lazy dog.", "é 日本語のテキスト \U0001f600 ok",
         "  \n\n\t  indented\r\nlines  ", "1234567890 3.14159 -42", "a" * 5000, "{{ row.text }} {% x %}",
         "Classify this support ticket.\nSubject: Refund request\nCustomer plan: pro | language: en"]


def test_counts_equal_the_public_encoder() -> None:
    import bpe_openai

    encoding = bpe_openai.get_encoding(ENCODING)
    assert tokenizer_name() == ENCODING
    assert [count_text_tokens(t) for t in TEXTS] == [len(encoding.encode_ordinary(t)) for t in TEXTS]


def test_counting_does_not_load_every_encoding_of_the_package() -> None:
    """bpe-openai's package init decodes all the encodings it ships (seconds of CPU per task)."""
    code = ("import sys; from airflow_llm_batch.pipeline.token_count import count_text_tokens as c; "
            "assert c('hello world') == 2; print('bpe_openai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
