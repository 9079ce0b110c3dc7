"""Gateway: the only public entry point (docs/security.md)."""
