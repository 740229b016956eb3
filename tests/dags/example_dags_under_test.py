"""The real-time example DAGs, loaded from example_dags/ into the test DAG folder so that dag.test()
(which serializes the DAGs of its bundle, this folder) can run them; see tests/test_example_realtime_dags.py.
Airflow registers each DAG a ``with DAG(...)`` block creates while this file is parsed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"

for _name in ("self_hosted_summaries", "nightly_deadline_auto"):
    _spec = importlib.util.spec_from_file_location(f"llmb_example_{_name}", EXAMPLES / f"{_name}.py")
    assert _spec is not None and _spec.loader is not None
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
