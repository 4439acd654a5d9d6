"""A run's eigensolver warnings for ``eosdsl run`` and ``eosdsl show``.

An iterative sharpness solver (``lobpcg``, ``power``) that stops at its ``max_iters`` cap without meeting
its tolerance records 1 in the series ``sharpness.capped`` for that measurement. Its stored values are
still certified by their residuals, but they did not reach the requested accuracy: say so next to the run.
Likewise a ``dopri5`` ODE that hit its ``max_substeps`` cap records 1 in ``ode.capped`` for that step.
"""

from __future__ import annotations

from typing import Any

CAPPED = "sharpness.capped"
ODE_CAPPED = "ode.capped"


NOTES = {
    CAPPED: (
        "the sharpness solver hit its max_iters cap unconverged at {count} of {total} measurements "
        "(first at step {first}; series {series}): its values are certified only by their residuals — "
        "raise max_iters or tol"
    ),
    ODE_CAPPED: (
        "the ODE integrator (dopri5) hit its max_substeps cap at {count} of {total} steps "
        "(first at step {first}; series {series}): their last sub-step missed rtol/atol — "
        "raise max_substeps or lower lr (Δτ)"
    ),
}
"""Cap series → the note printed when it holds hits."""


def solver_notes(run: Any) -> list[str]:
    """One line per solver series with cap hits (none when the run has no such series or it is unreadable:
    ``eosdsl registry verify`` reports damage, not this note)."""
    notes = []
    for series, text in NOTES.items():
        hits = _hits(run, series)
        if hits is not None:
            count, total, first = hits
            notes.append(text.format(count=count, total=total, first=first, series=series))
    return notes


def _hits(run: Any, name: str) -> tuple[int, int, int] | None:
    """(records > 0, records, first such step) of the series ``name``; None if it has none or is absent."""
    import numpy as np  # lazily: keeps ``eosdsl`` start-up light

    try:
        if name not in run.series_names():
            return None
        steps, values = run.series(name)
    except Exception:  # noqa: BLE001 — a damaged store is reported elsewhere; a note must never fail
        return None
    hit = np.flatnonzero(np.asarray(values) > 0)
    return None if hit.size == 0 else (int(hit.size), int(np.asarray(values).size), int(steps[hit[0]]))
