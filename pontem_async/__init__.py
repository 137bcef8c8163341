"""pontem-async: asyncio-native telemetry — structured logs, metrics and a call-tree profiler,
delivered by async handlers that never block the event loop and never lose data silently.

    import pontem_async as pa

    telemetry = pa.init(service_name="checkout")      # or pa.dict_config({...})
    pa.logger.info("model loaded", model="v3")
    await telemetry.flush()
"""

from pontem_async import metrics
from pontem_async._consume import consume
from pontem_async._flatten import log_attributes, log_config
from pontem_async.agentconfig import config
from pontem_async.context import bind_context, get_context
from pontem_async.dictconfig import dict_config, file_config
from pontem_async.errors import ConfigError, PontemError, QueueFullError, ValidationError
from pontem_async.events import current, event, get_run, start_run, stop_run
from pontem_async.log import Logger
from pontem_async.pipeline import PipelineOptions, ShutdownReport
from pontem_async.profiler import Profiler, profile, profiler
from pontem_async.records import Level, LogRecord, Record
from pontem_async.telemetry import Telemetry, get_default, get_logger, init

__version__ = "0.1.0"

logger: Logger = get_logger()
"""The root logger of the default telemetry instance."""


async def flush(timeout: float | None = None) -> bool:
    """Flush the default instance (see :meth:`Telemetry.flush`)."""
    return await get_default().flush(timeout)


async def shutdown(timeout: float | None = None) -> ShutdownReport:
    """Shut the default instance down (see :meth:`Telemetry.shutdown`)."""
    return await get_default().shutdown(timeout)


def stats() -> dict[str, dict[str, object]]:
    """Delivery and drop counters of the default instance, per handler."""
    return get_default().stats()


__all__ = [
    "ConfigError",
    "Level",
    "LogRecord",
    "Logger",
    "PipelineOptions",
    "PontemError",
    "Profiler",
    "QueueFullError",
    "Record",
    "ShutdownReport",
    "Telemetry",
    "ValidationError",
    "__version__",
    "bind_context",
    "config",
    "consume",
    "current",
    "dict_config",
    "event",
    "file_config",
    "flush",
    "get_context",
    "get_default",
    "get_logger",
    "get_run",
    "init",
    "log_attributes",
    "log_config",
    "logger",
    "metrics",
    "profile",
    "profiler",
    "shutdown",
    "start_run",
    "stats",
    "stop_run",
]
