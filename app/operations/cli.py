"""Operator commands, run as `flask --app wsgi <command>` (or `make check`): they share the app's config."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.database.engine import db
from app.operations import audit
from app.web import idempotency


def init_app(app: Flask) -> None:
    app.cli.add_command(check)
    app.cli.add_command(purge_idempotency_keys)


@click.command()
@with_appcontext
def check() -> None:
    """Verify every event's invariants against its rows and its ledger replayed from empty.

    Prints one line per mismatch and exits with status 1 if there is any.
    """
    report = audit.check(db.engine)
    for problem in report.problems:
        click.echo(problem)
    click.echo(report.summary())
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command("purge-idempotency-keys")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
@with_appcontext
def purge_idempotency_keys(batch_size: int) -> None:
    """Delete the Idempotency-Keys older than IDEMPOTENCY_RETENTION (default 24h).

    Short transactions of `batch-size` keys each, skipping keys in use: safe while serving, e.g. hourly from cron.
    """
    retention_s = current_app.config["IDEMPOTENCY_RETENTION_S"]
    deleted = idempotency.purge_expired(db.engine, retention_s, batch_size)
    click.echo(f"purged {deleted} idempotency keys older than {retention_s} s")
