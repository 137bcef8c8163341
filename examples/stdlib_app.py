"""An application that keeps using stdlib ``logging``; its records join the pipeline.

``stdlib_logging=True`` attaches one handler to the root logger. The root logger's level still
decides what is emitted, as it always does in stdlib.

    python examples/stdlib_app.py
"""

import logging

import pontem_async as pa

logging.basicConfig(level=logging.INFO)
pa.init(service_name="legacy-billing", stdlib_logging=True)

log = logging.getLogger("billing")
log.info("invoice sent", extra={"invoice_id": "inv-1", "amount_cents": 1999})
try:
    raise ConnectionError("smtp relay refused connection")
except ConnectionError:
    log.exception("mail failed")
