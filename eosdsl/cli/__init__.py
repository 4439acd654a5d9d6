"""The ``eosdsl`` command line.

Exit status: 0 success; 1 a check failed; 2 bad input (a spec error, an unknown run id, a bad
override) — reported as ``file:line:col key.path: message``, never a traceback.
"""

from __future__ import annotations

from eosdsl.cli import check as _check  # noqa: F401  (importing registers the commands)
from eosdsl.cli import inspect as _inspect  # noqa: F401
from eosdsl.cli import kinds as _kinds  # noqa: F401
from eosdsl.cli import maintain as _maintain  # noqa: F401
from eosdsl.cli import plot as _plot  # noqa: F401
from eosdsl.cli import report as _report  # noqa: F401
from eosdsl.cli import specs as _specs  # noqa: F401
from eosdsl.cli.common import app


def main() -> None:
    """Console-script entry point. A registry failure no command handled (a stored run found damaged
    while reading it) is one line and exit 1, never a traceback."""
    from eosdsl.cli.common import err
    from eosdsl.registry import RegistryError

    try:
        app()
    except RegistryError as error:
        err.print(f"error: {error}", markup=False)
        raise SystemExit(1) from None


__all__ = ["app", "main"]
