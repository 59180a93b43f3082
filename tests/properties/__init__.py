"""The oracle and concurrency: imgix ends holding what S3 holds, whatever the order of
operations and deliveries."""
