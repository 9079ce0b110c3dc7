"""Pure gateway rules: keys, tenants, which role may call which route."""
