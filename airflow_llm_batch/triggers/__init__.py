"""Async polling of a task's batches in the triggerer; nothing else happens here."""
