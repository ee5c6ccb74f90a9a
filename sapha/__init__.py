"""The composition root: settings, the services built from them, the live feeds, the pages and the route table.

The one package that may import every other; ``server.py`` (the command line) builds the app from it.
"""
