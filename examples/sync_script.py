"""A synchronous script: no event loop of its own.

pontem-async runs its pipeline on a private loop in one daemon thread; logging returns at once,
and everything queued is written when the script ends (atexit), or on SIGTERM.

    python examples/sync_script.py        # records land in ./telemetry/records.jsonl
"""

import pontem_async as pa

pa.init(service_name="nightly-report")
log = pa.get_logger("report")

for region in ("eu", "us", "apac"):
    with pa.bind_context(region=region):
        log.info("region processed", rows=1200, duration_ms=85.5)

orders, visits = 0, 0
try:
    conversion = orders / visits
except ZeroDivisionError:
    log.exception("ratio failed", metric="conversion")

# Optional: wait until everything is on disk before doing something else with the files.
pa.get_default().flush_sync(timeout=5)
print("stats:", pa.stats())
