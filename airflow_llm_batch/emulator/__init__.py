"""A local server that speaks the OpenAI (and Azure OpenAI), Anthropic, Gemini Developer API and
Vertex AI batch APIs, for offline, free tests.

The official ``openai``, ``anthropic``, ``google-genai`` and ``google-cloud-aiplatform`` SDKs talk to
it unchanged (Gemini: ``genai.Client(api_key=..., http_options=HttpOptions(base_url=emu.url))``;
Vertex jobs read their input from and write their output to the GCS/BigQuery emulators set with
``POST /_emulator/vertex/storage`` or ``STORAGE_EMULATOR_HOST`` / ``BIGQUERY_EMULATOR_HOST``)::

    from airflow_llm_batch.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(requests_per_second=5000)) as emu:
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="test")
        claude = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="test")
        ...
        emu.stats()["openai"]["requests_by_custom_id"]

Answers are deterministic (see :mod:`airflow_llm_batch.emulator.model` for the rules and the
``[[emulator:...]]`` prompt markers that make rows fail or truncate). A :class:`FaultPlan`
(``emu.set_fault_plan(FaultPlan(row_error_rate=0.1))``, see :mod:`airflow_llm_batch.emulator.faults`)
makes every provider fail rows, expire batches, answer transient HTTP errors, lose the answer of a
create that worked (an error, a dropped connection or a hang), slow down or write broken output
lines, deterministically. The package is written from
the providers' wire formats only and imports nothing else from ``airflow_llm_batch``.
"""

from .cli import main
from .config import EmulatorConfig
from .faults import Fault, FaultPlan
from .server import AsyncEmulator, Emulator, create_app, serve

__all__ = ["AsyncEmulator", "Emulator", "EmulatorConfig", "Fault", "FaultPlan", "create_app", "main", "serve"]
