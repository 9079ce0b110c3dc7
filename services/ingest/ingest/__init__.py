"""Ingest service: hospital events in over HTTP, validated and pseudonymised, out to Kafka."""
