"""PLACEHOLDER - being written."""
from pontem_async.handlers.base import Handler


class RotatingFileHandler(Handler):
    def __init__(self, path: str, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.path = path

    async def emit(self, batch: object) -> None:  # type: ignore[override]
        raise NotImplementedError
