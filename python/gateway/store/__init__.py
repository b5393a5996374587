"""Durable state behind one SQLAlchemy layer: SQLite (WAL) in the state folder by default, PostgreSQL for many
gateway instances sharing keys, budgets, the ledger and the audit log."""
