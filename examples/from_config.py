"""Configure everything from a file (JSON, or YAML with PyYAML installed).

    python examples/from_config.py examples/config.json
    pontem-async check-config examples/config.yaml     # validate and print it resolved
"""

import sys

import pontem_async as pa

telemetry = pa.file_config(sys.argv[1] if len(sys.argv) > 1 else "examples/config.json")
log = pa.get_logger("checkout")
log.info("cart priced", items=3, total_cents=4599)
log.warn("payment slow", latency_ms=950)  # also echoed on stderr by the console handler
telemetry.flush_sync(timeout=5)
