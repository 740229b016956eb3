"""Real-time sends on a provider's ordinary endpoint: the other half of the batch path."""
