"""Sensors that wait for submitted batches: ``from airflow_llm_batch.sensors import LLMBatchSensor``."""

from airflow_llm_batch.sensors.batch import LLMBatchSensor

__all__ = ["LLMBatchSensor"]
