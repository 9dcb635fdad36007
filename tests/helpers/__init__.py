"""What the tests share, one module per concern; the fixtures are in tests/conftest.py.

A test module never imports from another test module or from a conftest (tests/unit/test_test_modules.py
checks it): what two of them need lives here.
"""
