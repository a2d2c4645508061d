"""Database layer: SQLAlchemy models, engine and session handling, and shared queries."""
