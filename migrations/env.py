"""Alembic environment: the URL comes from the caller's connection or from DATABASE_URL."""

import os

from alembic import context
from sqlalchemy import create_engine

from app.config import normalise_database_url
from app.database.tables import metadata

config = context.config


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # handed in by a test or by app.operations.serve
        _run_with(connection)
        return
    with create_engine(_database_url()).connect() as connection:
        _run_with(connection)


def _run_with(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set: point it at the PostgreSQL database to migrate")
    return normalise_database_url(url)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
