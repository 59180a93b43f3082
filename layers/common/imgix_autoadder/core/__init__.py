"""What every function shares: settings, logging and metrics, the API key, the DLQ."""
