"""Storage: SQLAlchemy 2 models, sessions, the portable upsert and Alembic migrations."""
