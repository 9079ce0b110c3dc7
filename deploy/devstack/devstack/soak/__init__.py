"""The soak with random faults (docs/reliability.md): `python -m devstack.soak`, `make soak`."""
