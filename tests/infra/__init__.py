"""The template and its IAM, the layer's cold start: what a deploy would run."""
