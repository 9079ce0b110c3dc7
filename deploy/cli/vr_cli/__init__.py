"""`vr`: a client of the public API (through the gateway), for people and scripts."""
