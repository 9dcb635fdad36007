"""The webargs parser of every blueprint."""

from __future__ import annotations

from webargs.flaskparser import FlaskParser

from app.web.request_context import bind_subjects


class ContractParser(FlaskParser):
    """The contract answers validation failures with 400, not webargs' default 422."""

    DEFAULT_VALIDATION_STATUS = 400

    def parse(self, *args, **kwargs):
        parsed = super().parse(*args, **kwargs)
        bind_subjects(parsed)  # validated values only: the log line says what the request was about
        return parsed
