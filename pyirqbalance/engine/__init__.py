"""The balancing engine: irqbalance's pass as pure stages over explicit state."""
