"""Generated gRPC modules of the Core<->Runner protocol (``make proto``)."""
