"""Storage: the SQLAlchemy schema, Alembic migrations, engines and the unit of work."""
