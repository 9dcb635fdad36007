"""HTTP blueprints: parse with a schema, call one service function, render."""

import functools
from http import HTTPStatus

from flask import request
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import resolve_schema_instance
from marshmallow import Schema
from werkzeug.routing import PathConverter

from app.web import request_context
from app.web.idempotency import idempotent_response
from app.web.parser import ContractParser

NO_FIELDS = Schema()  # what a POST that reads no body may be sent all the same: `{}`


class AnyCharacterPath(PathConverter):
    """`<path:...>` for ids of any characters: werkzeug's `[^/].*?` matches no line feed after the first
    character (its `.` is compiled without DOTALL), so `/api/users/a%0Ab/bookings` matched no route and
    was a 404 the document does not list, where the id's own rule answers 400."""

    regex = "[^/](?s:.*?)"


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ContractParser()

    def arguments(self, schema, *args, **kwargs):
        # Given a schema class, webargs builds (and deep-copies the fields of) a new instance for
        # every request; one instance, made once here, serves them all (loading keeps no state).
        return super().arguments(resolve_schema_instance(schema), *args, **kwargs)

    def problems(self, *statuses: int):
        """Document the view's own error responses (problem+json, see app/web/docs.py); 400 comes with
        `arguments`, and the errors of the request plumbing (400, 413, 415, 429, 500) are added for every view."""

        def decorator(view):
            for status in statuses:
                view = self.alt_response(status, response=HTTPStatus(status).name)(view)
            return view

        return decorator

    def idempotent_response(self, status, schema, present=lambda result: result, headers=None):
        """`response(status, schema)` for a write, whose view returns the use case to run, with the
        request's Idempotency-Key if it has one (app/web/idempotency.py)."""
        return idempotent_response(self, status, schema, present, headers)

    def takes_no_body(self, view):
        """A POST that reads no body (an action on the resource its path names): it may be sent without
        one, and so without a Content-Type (app/web/request_context.py). A body it is sent all the same
        is parsed like any other, strictly, and must be `{}`: `xx` under application/json is a 400, not
        an action taken."""

        @functools.wraps(view)
        def without_body(*args, **kwargs):
            if request.get_data(cache=True):
                self.ARGUMENTS_PARSER.parse(NO_FIELDS, location="json")
            return view(*args, **kwargs)

        return request_context.takes_no_body(without_body)
