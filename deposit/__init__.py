"""Pligt's service, one sub-package per runtime.

- ``deposit.web``: the Flask app (factory, views per audience, the fast path, one error mapping).
- ``deposit.cli``: the ``pligt`` command (click); it never imports Flask until ``pligt serve``.
- ``deposit.server``: gunicorn glue (the server, its worker class, warm-up, the address-free log).

Beside them, what web and CLI share without importing Flask: ``settings`` (one
settings object), ``instance`` (making and opening an instance), ``links`` (the
URLs handed out), ``mail`` and ``release`` (handing a credential over).
"""
