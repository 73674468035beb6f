"""Bundled plugins: small HTTP services Core calls with the shared plugin token."""
