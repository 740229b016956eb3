"""Sensors that wait for submitted batches."""
