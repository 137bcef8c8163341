"""A phanos program moved to pontem-async: the settings dict and the decorators stay as they were.

Before (phanos)::

    import phanos
    phanos.profiler.dict_config(SETTINGS)

    @phanos.profile
    def ...

After: ``pa.profiler.dict_config(SETTINGS)`` takes the same dict (phanos' handler class paths map
to pontem-async's), ``@pa.profile`` replaces ``@phanos.profile``, and the hooks keep phanos'
arguments and order. Profiles go through pontem-async's pipeline: a slow or failing handler never
costs the profiled code anything.

    python examples/phanos_migrated.py     # phanos-style profile lines on stdout
"""

import asyncio
import logging

import pontem_async as pa

SETTINGS = {
    "job": "billing",
    "logger": "billing.profiler",
    "time_profile": True,
    "response_size_profile": False,
    "handle_records": True,
    "error_raised_label": True,
    "handlers": {
        "stdout": {
            "class": "phanos.handlers.StreamHandler",
            "handler_name": "stdout",
            "output": "ext://sys.stdout",
        },
    },
}

roots_started: list[str] = []


def before_root(func, args, kwargs):  # phanos' hook signature: (func, args, kwargs)
    roots_started.append(func.__name__)


class Invoices:
    @pa.profile
    async def render(self, invoice_id: int) -> str:
        await asyncio.sleep(0.001)
        return f"<invoice {invoice_id}>"

    @pa.profile
    async def send(self, invoice_id: int) -> None:
        await asyncio.sleep(0.001)
        if invoice_id == 3:
            raise ConnectionError("smtp refused")


class Billing:
    def __init__(self) -> None:
        self.invoices = Invoices()

    @pa.profile
    async def charge(self, invoice_id: int) -> str:
        body = await self.invoices.render(invoice_id)
        try:
            await self.invoices.send(invoice_id)
        except ConnectionError:
            logging.getLogger("billing").warning("invoice %s not sent", invoice_id)
        return body


async def main() -> None:
    pa.profiler.dict_config(SETTINGS)  # as the phanos program did at startup
    pa.profiler.before_root_func = before_root
    billing = Billing()
    await asyncio.gather(*(billing.charge(n) for n in range(1, 5)))
    await pa.shutdown(timeout=5)  # phanos had nothing to flush; here the pipeline drains


if __name__ == "__main__":
    asyncio.run(main())
    print(f"roots started: {len(roots_started)}")
