"""Pure tests: no network, no moto, no emulator. `make unit` runs them in seconds."""
