"""Airflow faces: parameters, templating, defer/resume and the XCom summary.

``from airflow_llm_batch.operators import LLMBatchOperator`` (one task), or the split form
``from airflow_llm_batch.operators import SubmitLLMBatchOperator, LLMBatchResultsOperator`` with
``from airflow_llm_batch.sensors import LLMBatchSensor`` between them.
"""

from airflow_llm_batch.operators.batch import LLMBatchOperator
from airflow_llm_batch.operators.split import LLMBatchResultsOperator, SubmitLLMBatchOperator

__all__ = ["LLMBatchOperator", "LLMBatchResultsOperator", "SubmitLLMBatchOperator"]
