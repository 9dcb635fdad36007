"""HTTP blueprints: parse with a schema, call one service function, render."""

from http import HTTPStatus

from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.utils import resolve_schema_instance

from app.web.idempotency import idempotent_response
from app.web.parser import ContractParser


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
