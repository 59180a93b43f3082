"""Ingest: an ingest bucket's objects uploaded to imgix (direct or through upload sessions)."""
