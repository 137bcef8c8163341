"""Integrations with application frameworks; each module imports its framework only when used.

- :mod:`pontem_async.integrations.aiohttp`: middleware (one call tree, log context and latency
  metric per request), app lifecycle, ``GET /metrics`` and the telemetry HTTP API.
"""
