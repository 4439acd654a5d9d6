"""The result record every numerical check returns.

A check compares a measured quantity with a bound or identity taken from a paper (e.g. Theorem 2 of
Phunyaphibarn et al., paper 000 §3.2) and reports a *signed margin*: ``margin >= 0`` means the
statement holds with that much slack (``bound - value`` for an upper bound), ``margin < 0`` means it is
violated by ``-margin``. When the hypotheses of the statement do not hold, the check is *not applicable*:
then ``passed=True``, ``margin=nan`` and ``detail`` says why.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CheckResult"]


def _plain_number(key: str, value: Any) -> float | int | bool:
    """Convert a (numpy) scalar to the matching plain Python type so the record is JSON-able."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _plain_number(key, value.item())
    raise TypeError(f"CheckResult.values[{key!r}] must be a real scalar, got {type(value).__name__}")


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class CheckResult:
    """JobOutcome of one check.

    Attributes:
        name: short identifier of the statement checked, e.g. ``"theorem2"``.
        passed: whether the statement holds (within the check's tolerance).
        margin: signed slack; ``>= 0`` satisfied by that much, ``< 0`` violated; ``nan`` if not applicable.
        detail: one human-readable sentence with the numbers.
        values: named scalar quantities used by the check (plain ``int``/``float``/``bool``).
        applicable: ``False`` when the hypotheses do not hold; then ``passed`` is ``True`` and
            ``margin`` is ``nan``.
    """

    name: str
    passed: bool
    margin: float
    detail: str
    values: dict[str, float] = field(default_factory=dict)
    applicable: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("CheckResult.name must be non-empty")
        object.__setattr__(self, "passed", bool(self.passed))
        object.__setattr__(self, "applicable", bool(self.applicable))
        object.__setattr__(self, "margin", float(self.margin))
        object.__setattr__(self, "values", {str(k): _plain_number(k, v) for k, v in self.values.items()})
        if not self.applicable and (not self.passed or not math.isnan(self.margin)):
            raise ValueError("a non-applicable CheckResult must have passed=True and margin=nan")

    @classmethod
    def not_applicable(cls, name: str, reason: str, values: dict[str, float] | None = None) -> CheckResult:
        """The record of a check whose hypotheses do not hold (``passed=True``, ``margin=nan``)."""
        return cls(
            name=name, passed=True, margin=math.nan, detail=reason, values=values or {}, applicable=False
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain, strict-JSON dict: non-finite floats (a not-applicable margin) become ``None``."""
        return {
            "name": self.name,
            "passed": self.passed,
            "margin": _finite_or_none(self.margin),
            "detail": self.detail,
            "values": {k: _finite_or_none(v) for k, v in self.values.items()},
            "applicable": self.applicable,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=d["name"],
            passed=d["passed"],
            margin=math.nan if d["margin"] is None else d["margin"],
            detail=d["detail"],
            values={k: math.nan if v is None else v for k, v in d.get("values", {}).items()},
            applicable=d.get("applicable", True),
        )
