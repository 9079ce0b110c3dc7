"""Gateway: the only public entry point (SPEC §7)."""
