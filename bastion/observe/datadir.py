"""The data directory is private: 0700, its files 0600.

It holds the trace store, the spool (request bodies, sealed, until they are ingested), the
spool's generated key and the metrics of worker processes; none of it is anyone else's to
read. Created that way, and an existing directory (from before, or unpacked from a backup
with the usual 0755/0644) is tightened at every start. Files created later are given
their modes explicitly (the spool, the key) or inherit the ingest process's umask (the
SQLite database, whose -wal and -shm files SQLite creates with the database's mode).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from bastion.config import Settings

log = logging.getLogger("bastion.datadir")
DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077


# what Bastion keeps in the data directory (only these are tightened: a home set to a
# directory with other files in it, $HOME say, keeps theirs as they are)
OURS = ("spool", "metrics", "unreadable", "encryption.key", "audit.head", "bastion.db",
        "bastion.db-wal",
        "bastion.db-shm", "bastion.db-journal")
OURS_GLOBS = ("*.log", "rejected*")


def _sqlite_file(settings: Settings) -> Path | None:
    url = settings.store.url or ""
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return Path(url[len("sqlite:///") :].partition("?")[0]).expanduser()
    return None


def secure_data_dir(settings: Settings) -> None:
    """Creates the data directory 0700 (tightening an existing one, but not the user's
    own home) and makes what Bastion keeps in it 0700 (directories) and 0600 (files),
    like a spool directory and a SQLite database configured elsewhere. Only what this
    user may change; a path it cannot change is logged, not fatal."""
    home = Path(settings.home).expanduser()
    home.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if home.resolve() != Path.home().resolve():
        _chmod(home, DIR_MODE)
    else:
        log.warning("the data directory is your home directory (%s): its other files "
                    "are left as they are; set BASTION_HOME to a directory of its own", home)
    for name in OURS:
        tighten(home / name)
    for pattern in OURS_GLOBS:
        for path in home.glob(pattern):
            tighten(path)
    if settings.tracing.spool_dir:
        spool = Path(settings.tracing.spool_dir).expanduser()
        spool.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        tighten(spool)
    db = _sqlite_file(settings)
    if db is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            tighten(db.with_name(db.name + suffix))


def tighten(root: Path) -> None:
    """``root`` (a file, or a directory and everything under it; symlinks not followed)
    to 0600/0700."""
    if not root.is_dir() or root.is_symlink():
        _chmod(root, FILE_MODE)
        return
    _chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            _chmod(Path(folder) / name, DIR_MODE)
        for name in files:
            _chmod(Path(folder) / name, FILE_MODE)


def _chmod(path: Path, mode: int) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return  # gone meanwhile (an ingested spool file)
    if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) & ~mode == 0:
        return
    try:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)
    except OSError as exc:
        log.warning("cannot make %s private (mode %o): %s", path, mode, exc)


def private_umask() -> None:
    """Files this process creates are its user's only (for processes of ours alone, like
    the ingest: a library must not change the umask of a process it is a guest in)."""
    with contextlib.suppress(OSError):
        os.umask(UMASK)
