"""What operators run: the server launcher, the embedded PostgreSQL, the CLI and the audit."""
