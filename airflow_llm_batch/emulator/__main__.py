"""``python -m airflow_llm_batch.emulator``: run the emulator in the foreground."""

import sys

from .cli import main

sys.exit(main())
