"""Lists as CSV (`Accept: text/csv`): the whole list, streamed as its pages are read (app/booking/organisers.py).

The columns are the JSON schema's own fields, under the same names and rendered the same way, so a
CSV export and the JSON pages of the same list say the same thing. Rows are written out BATCH at a
time, so the worker holds one batch of rows and of text however long the list is.

A cell is text a spreadsheet may run: a user id such as `=HYPERLINK(...)` is a formula once the
organiser opens the file. As OWASP's CSV injection guidance says, a text cell that starts with `=`,
`+`, `-`, `@`, a tab or a carriage return is written with a single quote before it (`'=1+1`), which a
spreadsheet shows as text, and quoted by the csv module wherever its characters need it. Numbers are
the service's own and are written as they are; the JSON lists are not touched.

A booking's `items` (ticket types, issue 26) are one cell, `adult:2;child:2` (type code, quantity, in
the types' order): one row stays one booking, under the same header for every event, and a code (`a-z`,
`0-9`, `-`) never holds the `:` or the `;` that part it. Each item's `ticketsAhead` is in the JSON pages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from itertools import islice

from flask import Response, request
from marshmallow import Schema

CSV = "text/csv"
BATCH = 1000
CSV_CONTENT = {CSV: {"schema": {"type": "string"}, "example": "id,userId,...\r\n"}}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet read a cell as a formula


def wants_csv() -> bool:
    """Whether the client asked for CSV rather than JSON (JSON wins a tie, `*/*` and no Accept)."""
    return request.accept_mimetypes.best_match(["application/json", CSV]) == CSV


def csv_response(rows: Iterable, schema: Schema, filename: str) -> Response:
    """`rows` as a streamed CSV download, one line per row, with a header line of the schema's names."""
    response = Response(_lines(rows, schema), mimetype=CSV)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _lines(rows: Iterable, schema: Schema) -> Iterator[str]:
    names = [field.data_key or name for name, field in schema.fields.items()]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names)
    writer.writeheader()
    rows = iter(rows)
    while batch := list(islice(rows, BATCH)):
        writer.writerows(map(_as_text_cells, schema.dump(batch, many=True)))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _as_text_cells(row: dict) -> dict:
    return {name: _as_text_cell(value) for name, value in row.items()}


def _as_text_cell(value):
    """A text value that a spreadsheet would run as a formula, with the quote that makes it text; a
    booking's items as one cell."""
    if isinstance(value, list):
        return items_cell(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def items_cell(items: list[dict]) -> str:
    """A booking's items (as the JSON has them) in one CSV cell: `adult:2;child:2`."""
    return ";".join(f"{item['ticketType']}:{item['quantity']}" for item in items)
