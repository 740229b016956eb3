"""One behaviour contract, run against every batch backend through the real engine and the emulator."""
