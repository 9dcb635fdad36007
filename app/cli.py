"""Operator commands, run as `flask --app wsgi <command>` (or `make check`): they share the app's config."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from app import audit
from app.extensions import db


def init_app(app: Flask) -> None:
    app.cli.add_command(check)


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
