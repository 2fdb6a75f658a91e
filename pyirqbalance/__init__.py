"""pyirqbalance: a drop-in Python reimplementation of the Linux irqbalance daemon."""

__version__ = "0.2.0"
#: The irqbalance release whose decisions pyirqbalance reproduces.
IRQBALANCE_COMPAT_VERSION = "1.9.2"
