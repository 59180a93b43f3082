"""Shared test harness: the stack in moto, real-shaped events, the template's IAM."""
