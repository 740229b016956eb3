"""Provider-neutral batch engine: no Airflow imports live below this package."""
