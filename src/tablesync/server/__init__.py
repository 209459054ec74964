"""The tablesync server: the /tables protocol on SQLAlchemy (SQLite and PostgreSQL)."""
