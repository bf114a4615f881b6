"""Log a bug in this server as one line: what failed and where, without a stack trace or the data in it.

Logs must carry no stack traces (they can hold prompts, replies or headers from the frames' values).
The full traceback is logged too, but only at DEBUG level, for someone who is debugging on purpose.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from typing import TypeVar

from ..errors import ErrorCode, RelayError

T = TypeVar("T")


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


def hook_answer(logger: logging.Logger, hook: str, failed: str, ask: Callable[[], T]) -> T:
    """What a team's hook answers (`ask()` calls it). A RelayError it raises goes to the client as it is; anything
    else is a bug in the hook: logged as one (never its message), and the client gets `internal` with `failed`."""
    try:
        return ask()
    except RelayError:
        raise
    except Exception as err:
        log_bug(logger, f"the {hook} hook failed", err)
        raise RelayError(ErrorCode.INTERNAL, failed) from None
