"""Apache Airflow provider for LLM batch pipelines.

Import the Airflow faces from their modules, e.g.
``from airflow_llm_batch.operators.batch import LLMBatchOperator``.
"""

__version__ = "0.1.0"
