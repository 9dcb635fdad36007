"""One blueprint per resource: parse with a schema, call one service, render. A write's view returns its
use case (a services.Write), which `idempotent_response` runs and renders (app/web/idempotency.py, `perform`)."""
