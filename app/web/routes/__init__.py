"""One blueprint per resource: parse with a schema, call one service, render."""
