"""Provider adapters: one module per provider behind the small interface in base.py; registry.py builds them."""
