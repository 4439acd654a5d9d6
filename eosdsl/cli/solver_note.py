"""A run's eigensolver warnings for ``eosdsl run`` and ``eosdsl show``.

An iterative sharpness solver (``lobpcg``, ``power``) that stops at its ``max_iters`` cap without meeting
its tolerance records 1 in the series ``sharpness.capped`` for that measurement. Its stored values are
still certified by their residuals, but they did not reach the requested accuracy: say so next to the run.
"""

from __future__ import annotations

from typing import Any

CAPPED = "sharpness.capped"


def solver_notes(run: Any) -> list[str]:
    """One line per solver series with cap hits (none when the run has no such series or it is unreadable:
    ``eosdsl registry verify`` reports damage, not this note)."""
    import numpy as np  # lazily: keeps ``eosdsl`` start-up light

    try:
        if CAPPED not in run.series_names():
            return []
        steps, values = run.series(CAPPED)
    except Exception:  # noqa: BLE001 — a damaged store is reported elsewhere; a note must never fail
        return []
    hit = np.flatnonzero(np.asarray(values) > 0)
    if hit.size == 0:
        return []
    return [
        f"the sharpness solver hit its max_iters cap unconverged at {hit.size} of {values.size} "
        f"measurements (first at step {int(steps[hit[0]])}; series {CAPPED}): "
        "its values are certified only by their residuals — raise max_iters or tol"
    ]
