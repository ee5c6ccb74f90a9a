"""The Senate's front desk: staff accounts, the public's messages, attachments and news (issue 10).

Self-contained cores, each with its own SQLite tables (prefixed ``desk_``) and tests; desk imports only ``common``.
Each module's docstring says how it is meant to be wired into the API, the server and the pages.
"""
