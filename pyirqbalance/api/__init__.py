"""REST API (server), its client ``pyirqbalancectl``, overrides and the load report."""
