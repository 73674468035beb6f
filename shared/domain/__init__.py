"""Pure logic: no I/O here (no database, network, clock or environment). Testable without a server."""
