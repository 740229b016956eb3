"""The GCS and BigQuery emulator fixtures (started once per session however many conftests import them)."""

from tests.gcp.fixtures import bq_emulator, gcp_connection, gcs_connection, gcs_emulator  # noqa: F401
