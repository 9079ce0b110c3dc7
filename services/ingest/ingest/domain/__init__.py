"""Pure rules of ingest: what may enter and how identifiers are pseudonymised. No I/O."""
