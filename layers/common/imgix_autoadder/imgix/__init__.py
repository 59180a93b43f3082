"""The one imgix Management API client: endpoints, transport (auth, retries, pacing), errors."""
