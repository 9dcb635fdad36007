"""Database functions in migrations: each installed from a frozen full copy of its definition.

The current definition of every database function is one file of its own, `app/<package>/sql/<function>.sql`
(the booking rules in app/booking/sql/, the webhook trigger in app/notifications/sql/). A migration never
reads those files (they move on after it) and never reads or patches another migration's text
(databases have applied that revision as it was): it holds
frozen, complete copies of the definitions it installs and of those its downgrade restores. This is
alembic's "replaceable objects" recipe (cookbook), written small, because PostgreSQL's
`CREATE OR REPLACE FUNCTION` already does the replacing that the recipe's operations wrap.

To change a function:

1. Edit `app/<package>/sql/<function>.sql`: that diff is the change a reviewer reads.
2. Add a migration (`.venv/bin/alembic revision -m "..."`) holding two frozen copies: the file as it is
   now, `<FUNCTION>`, and as it was, `<FUNCTION>_BEFORE` (`git show HEAD:app/<package>/sql/<function>.sql`).
   `upgrade()` calls `create_or_replace(<FUNCTION>)`, `downgrade()` `create_or_replace(<FUNCTION>_BEFORE)`.
3. If the arguments' types or the result's columns change, `CREATE OR REPLACE` cannot replace the
   function (PostgreSQL adds an overload, or refuses a new result type): `drop()` the old signature
   before installing the new one, in both directions, and update its callers among the functions.
4. `tests/integration/test_sql_functions.py` fails until the definition at head is the file's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def create_or_replace(*definitions: str) -> None:
    """Run each frozen `CREATE OR REPLACE FUNCTION ...` text exactly as written.

    The colons are escaped so that SQLAlchemy never reads `:name` in a function body as a bind parameter.
    """
    for definition in definitions:
        op.execute(sa.text(definition.replace(":", r"\:")))


def drop(*signatures: str) -> None:
    """Drop each function named by its signature, e.g. `book_ticket(uuid, text)`."""
    for signature in signatures:
        op.execute(f"DROP FUNCTION {signature}")
