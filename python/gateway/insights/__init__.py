"""Debugging calls: replaying an audited call and comparing targets, through the same pipeline as any call."""
