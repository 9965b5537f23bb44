"""The lab's HTTP front of the open centres: their STAC APIs and files, on loopback.

Server-side code of the local lab. ``earthlab hub up`` starts it as
``python -m lab_server.stac_front CONFIG.json``; the restricted-data service
(:mod:`lab_server.restricted`) builds on the same handlers.
"""

from lab_server.stac_front._app import (
    BadRequestError,
    FilesHandler,
    JsonErrorsMixin,
    StacProxyHandler,
    main,
    make_app,
    rewrite_links,
)

__all__ = [
    "BadRequestError",
    "FilesHandler",
    "JsonErrorsMixin",
    "StacProxyHandler",
    "main",
    "make_app",
    "rewrite_links",
]
