"""The `gateway` command: serve, and client commands over the gRPC API."""
