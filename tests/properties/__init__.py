"""The oracle and concurrency: imgix ends holding what S3 holds, over random operations and deliveries."""
