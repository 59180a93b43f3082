"""What S3 says: its event shapes and what it holds now for a key."""
