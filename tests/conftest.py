"""Shared test set-up. Fixtures live beside what they start; this file only loads them."""

pytest_plugins = ["tests.fakes.fixtures", "tests.server.fixtures", "tests.store.postgres", "tests.store.redis"]
