"""The booking core: the domain, its use cases, and the SQL functions that hold the rules."""
