"""The shared imgix rate budget: slot pacing, the DynamoDB schedule, the 429 controller."""
