"""Administration: what the Admin API does, apart from protobuf."""
