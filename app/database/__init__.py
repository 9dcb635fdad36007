"""The database adapter: the engine extension, the tables, group commit."""
