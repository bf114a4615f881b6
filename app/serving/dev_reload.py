"""`make dev`'s auto-restart: which folders are watched, and the watchdog command that restarts the relay on a save.

The watched folders are listed once, here (WATCHED), relative to the repository root: add a package's folder to
it and `make dev` restarts on saves in it too.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Folders whose Python files make up the relay; every `*.py` below them, in any subfolder, is watched.
WATCHED: tuple[str, ...] = ("app", "chat_relay")
# watchdog 7 matches a pattern against the whole path (PurePath.full_match): "*.py" would match only files
# directly in a watched folder, "**/*.py" matches them in every subfolder too (and in the folder itself).
PATTERN = "**/*.py"
KILL_AFTER_S = 5  # sooner than the launcher gives up on watchmedo (launch._stop_children), so nothing outlives it
# One save is several file events (an editor writes, closes, may rename): without a pause, the second event stopped
# the relay the first had just started, while Python itself was still starting (a KeyboardInterrupt traceback).
DEBOUNCE_S = 0.3


def watched_dirs(root: Path = ROOT) -> list[Path]:
    """The watched folders that exist in this checkout (a folder not yet created is skipped, not an error)."""
    return [root / name for name in WATCHED if (root / name).is_dir()]


def auto_restart(command: list[str], root: Path = ROOT) -> list[str]:
    """`command` under watchdog's `watchmedo auto-restart`, restarted on every save of a `.py` file below WATCHED.

    A relay that exits (a syntax error just saved) waits for the next save instead of restarting in a loop.
    watchmedo stops it with SIGINT, as Ctrl-C would (a quick drain), and kills it after KILL_AFTER_S.
    """
    directories = [arg for folder in watched_dirs(root) for arg in ("--directory", str(folder))]
    return [sys.executable, "-m", "watchdog.watchmedo", "auto-restart", *directories,
            "--patterns", PATTERN, "--recursive", "--no-restart-on-command-exit",
            "--kill-after", str(KILL_AFTER_S), "--debounce-interval", str(DEBOUNCE_S), "--", *command]
