"""Indexing: S3 events turned into the imgix calls that make imgix hold what S3 holds."""
