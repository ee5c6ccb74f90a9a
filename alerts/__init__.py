"""Alerts for people who follow a bill, a topic, a keyword or a speaker: webhooks, Web Push, Atom feeds, texts.

Layering: ``alerts`` sits beside ``live`` at the top (it may import ``archive`` and ``common``; only ``live`` and
``server.py`` may import it). Each module is a self-contained core to be wired into the store, API and server:

* ``messages`` — the words of each alert (Thai, with English), plain text, never HTML.
* ``url_policy`` — which URLs a webhook or push endpoint may point at (SSRF guard, ``WEBHOOK_ALLOW_PRIVATE``).
* ``schedule`` — sans-I/O retry schedule (Standard Webhooks), ``Retry-After``, when to disable an endpoint.
* ``sender`` — one bounded POST (timeout, no redirects, never raises): the only network I/O they share, and
  ``HttpSender``, the delivery workers' lean keep-alive HTTP/1.1 client.
* ``webhooks`` — Standard Webhooks secrets, signatures and the signed POST.
* ``push`` — Web Push (RFC 8030/8291/8292) requests (``cryptography``, ``py_vapid``), VAPID keys kept in ``var/``.
* ``atom`` — Atom feeds with stable entry ids (``feedgen``).
"""
