"""TaskFlow decorators: ``@task.llm_batch_job``."""
