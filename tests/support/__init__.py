"""Helpers shared by tests: loopback servers and real processes."""
