"""What the tests (and the scripts beside them) share: real processes, data, clients.

``tests/conftest.py`` keeps fixtures only; the helpers live here under names that
say what they do.
"""
