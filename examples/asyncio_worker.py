"""An asyncio worker: the pipeline runs on the application's own loop.

Each job binds its id into the context, so every log made while it runs (in any task it starts)
carries it. ``await telemetry.flush()`` is a durability point; ``shutdown`` closes the files.

    python examples/asyncio_worker.py
"""

import asyncio
import random

import pontem_async as pa


async def process(job_id: int) -> None:
    log = pa.get_logger("worker")
    with pa.bind_context(job_id=job_id):
        log.debug("job started")
        await asyncio.sleep(random.random() / 100)
        if job_id % 7 == 0:
            try:
                raise TimeoutError(f"upstream timed out after {job_id * 10} ms")
            except TimeoutError:
                log.exception("job failed")  # same fingerprint for every job_id
                return
        log.info("job done", items=job_id * 3)


async def main() -> None:
    telemetry = pa.init(service_name="image-worker", flush_interval=0.2)
    await asyncio.gather(*(process(n) for n in range(50)))
    assert await telemetry.flush(timeout=5)
    report = await telemetry.shutdown()
    print(report)


asyncio.run(main())
