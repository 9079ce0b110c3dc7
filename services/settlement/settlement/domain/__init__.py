"""Pure settlement maths and contract rules: no I/O, no framework."""
