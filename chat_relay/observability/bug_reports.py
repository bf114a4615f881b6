"""Log a bug in this server as one line: what failed and where, without a stack trace or the data in it.

Logs must carry no stack traces (they can hold prompts, replies or headers from the frames' values).
The full traceback is logged too, but only at DEBUG level, for someone who is debugging on purpose.
"""

from __future__ import annotations

import logging
import sys
import traceback


def log_bug(logger: logging.Logger, what: str, exc: BaseException | None = None) -> None:
    """`what` failed: log the exception's type and the file:line it came from; never its message."""
    exc = exc or sys.exc_info()[1]
    if exc is None:
        logger.error("%s", what)
        return
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else "unknown"
    logger.error("%s: %s at %s (LOG_LEVEL=DEBUG logs the traceback)", what, type(exc).__name__, where)
    logger.debug("%s", what, exc_info=exc)
