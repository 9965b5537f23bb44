"""The server-side ``earthlab`` commands (``hub``, ``kernels``), registered as entry points."""
