"""The runner gateway: Core's gRPC servers for enrollment and for connected runners."""
