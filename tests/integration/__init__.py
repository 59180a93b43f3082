"""moto + the imgix emulator + the real handlers, event by event."""
