"""The HTTP API: authenticates, validates, writes state and enqueues work; never runs a step."""
