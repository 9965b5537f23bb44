"""The lab's Jupyter kernelspecs, as package data (``lab_server.kernels``).

One directory per kernel, each with its ``kernel.json``; ``earthlab kernels install`` installs
them with this environment's interpreter. Installed, this directory is the subpackage
``lab_server.kernels`` (``pyproject.toml`` maps it).
"""
