"""The lab's notebooks and workshop, as package data (``lab_server.notebooks``).

This file makes the documentation directory installable as ``lab_server.notebooks``
(``pyproject.toml`` maps it): the hub copies ``notebooks/`` and ``workshop/`` into each user's
home on first login, from a wheel as from a checkout. The site build ignores it
(``exclude_docs`` in ``mkdocs.yml``).
"""
