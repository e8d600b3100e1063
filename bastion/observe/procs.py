"""Process helpers shared by the observers that keep per-process files."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Is there a process ``pid``? (One we may not signal counts as alive.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
