"""TaskFlow decorators: ``@task.llm_batch``."""
