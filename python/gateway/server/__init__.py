"""The gRPC surface: servicers, conversion between protobuf and the domain, error mapping, the server's lifecycle."""
