"""Kernel I/O: the one door to /proc and /sys, and a pure parser per kernel file."""
