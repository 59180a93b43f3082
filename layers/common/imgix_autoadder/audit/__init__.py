"""Is the Asset Manager complete and current? S3 and imgix's asset list, compared."""
