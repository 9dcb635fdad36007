"""What the tests share, one module per concern; the fixtures are in tests/conftest.py."""
