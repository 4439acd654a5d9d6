"""Claims: which process computes a run, so two processes never compute the same run at once.

A claim is ``claims/<run_key>.json``, created with ``O_CREAT | O_EXCL`` (atomic on POSIX and NFSv3+).
Its holder refreshes the file's mtime (the heartbeat) between chunks. A claim is *stale* when its
heartbeat is older than ``stale_after`` seconds, or when it was made on this host by a process that
no longer exists; a stale claim may be taken over (the taker resumes from the run's checkpoint).
Taking over renames the stale file to a unique name first, so of two takers exactly one wins.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STALE_AFTER = 120.0
"""Seconds without a heartbeat after which a claim from another host is considered abandoned."""


def claims_dir(root: Path) -> Path:
    return root / "claims"


def claim_path(root: Path, run_key: str) -> Path:
    return claims_dir(root) / f"{run_key}.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_claim(path: Path) -> dict[str, Any] | None:
    """The claim's content, or ``None`` if it does not exist; an unreadable claim reads as ``{}``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def is_stale(path: Path, stale_after: float = STALE_AFTER) -> bool:
    """True if the claim at ``path`` exists and is abandoned (see the module docstring)."""
    info = read_claim(path)
    if info is None:
        return False
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return not _pid_alive(info["pid"]) or age > stale_after * 10
    return age > stale_after


def claim_is_live(root: Path, run_key: str, stale_after: float = STALE_AFTER) -> bool:
    """True if some process holds a non-stale claim on ``run_key``."""
    path = claim_path(root, run_key)
    return path.exists() and not is_stale(path, stale_after)


@dataclass
class Claim:
    """A held claim; release it when the run is committed (or abandoned)."""

    path: Path
    token: str
    took_over: bool = False

    def heartbeat(self) -> None:
        """Refresh the claim's mtime so other processes see the holder is alive."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)

    def release(self) -> None:
        """Remove the claim if it is still ours."""
        info = read_claim(self.path)
        if info is not None and info.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _create(path: Path, token: str) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    info = {"pid": os.getpid(), "host": socket.gethostname(), "token": token, "since": time.time()}
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(info, f)
    return True


def try_claim(root: Path, run_key: str, stale_after: float = STALE_AFTER) -> Claim | None:
    """Claim ``run_key`` if nobody holds it (or its holder is gone); ``None`` if a live claim exists."""
    path = claim_path(root, run_key)
    token = secrets.token_hex(8)
    if _create(path, token):
        return Claim(path, token)
    if not is_stale(path, stale_after):
        return None
    tomb = path.with_name(f"{path.name}.stale.{token}")
    try:
        os.rename(path, tomb)  # exactly one taker succeeds
    except FileNotFoundError:
        return None
    with contextlib.suppress(FileNotFoundError):
        tomb.unlink()
    return Claim(path, token, took_over=True) if _create(path, token) else None
