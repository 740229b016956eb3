"""One small module per provider batch API; each implements `pipeline.backend.BatchBackend`."""
