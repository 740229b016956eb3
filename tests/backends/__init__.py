"""Provider backends and hooks, tested with the official SDKs against the bundled emulator."""
