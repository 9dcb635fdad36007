"""The webargs parser of every blueprint."""

from __future__ import annotations

from webargs.flaskparser import FlaskParser

from app.web import request_body
from app.web.request_context import bind_subjects


class ContractParser(FlaskParser):
    """The contract answers validation failures with 400, not webargs' default 422."""

    DEFAULT_VALIDATION_STATUS = 400

    def parse(self, *args, **kwargs):
        parsed = super().parse(*args, **kwargs)
        bind_subjects(parsed)  # validated values only: the log line says what the request was about
        return parsed

    def _raw_load_json(self, req):
        # webargs' own, with the strict JSON of app/web/request_body.py: its JSONDecodeError is
        # answered as any malformed body is, 400 "Invalid JSON body.". No check of the content type:
        # a POST that is not JSON never reaches a view (415, app/web/request_context.py).
        return request_body.loads(req.get_data(cache=True))
