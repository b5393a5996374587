"""Routing: from the model (or route) a caller asks for to the target that serves the call."""
