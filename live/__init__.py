"""What joins the stages: a feed runs source → caption engine → recorder (archive, then bus), HLS beside it.

``live`` is the only package that imports ``stream``, ``transcribe`` and ``archive`` together; each of those
imports nothing from the others (the contracts in ``pyproject.toml`` are checked by ``make test``).
"""
