"""Run INSIDE the coexistence venv (not collected by pytest): what Airflow's providers managers resolve
when airflow-llm-batch is installed beside the official OpenAI, Anthropic and Common AI providers.

Prints one JSON object as the last line of stdout: the hook class and package each connection type resolves to, the hook
``Connection.get_hook()`` builds, and each task decorator. Airflow logs its "already registered" warnings
before it, which the test reads.
"""

from __future__ import annotations

import json
import os
import warnings

CONN_TYPES = ("openai", "anthropic", "pydanticai", "llm_batch_gemini", "llm_batch_azure_openai")
DECORATORS = ("llm_batch", "llm_batch_job", "llm")


def _class_path(obj: object) -> str:
    """``module.Name`` of a class or function, or of an instance's class."""
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{target.__module__}.{target.__qualname__}"


def main() -> None:
    warnings.simplefilter("ignore")
    from airflow.models.connection import Connection
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    core, runtime = ProvidersManager(), ProvidersManagerTaskRuntime()
    core.initialize_providers_hooks()
    runtime.initialize_providers_hooks()
    hooks = {}
    for conn_type in CONN_TYPES:
        info = core.hooks.get(conn_type)
        hooks[conn_type] = None if info is None else {"class": info.hook_class_name, "package": info.package_name}
    get_hook = {}
    for conn_type in ("openai", "anthropic"):
        os.environ[f"AIRFLOW_CONN_PROBE_{conn_type.upper()}"] = json.dumps({"conn_type": conn_type, "password": "k"})
        get_hook[conn_type] = _class_path(Connection(conn_id=f"probe_{conn_type}", conn_type=conn_type).get_hook())
    decorators = {name: _class_path(runtime.taskflow_decorators[name]) if name in runtime.taskflow_decorators
                  else None for name in DECORATORS}
    decorators_core = {name: _class_path(core.taskflow_decorators[name]) for name in DECORATORS
                       if name in core.taskflow_decorators}
    print(json.dumps({"hooks": hooks, "get_hook": get_hook,
                      "decorators": decorators, "decorators_core": decorators_core}))


if __name__ == "__main__":
    main()
