"""Helpers for running a real broker on this machine: shared by the live-server tests and bench/."""
