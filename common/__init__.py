"""Leaf modules that several stages share (Thai text, caption cues, HTTP errors and auth, backoff).

Nothing here imports any other package of the project: every stage may import ``common``, ``common`` imports none.
"""
