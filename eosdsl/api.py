"""The Python API for notebooks: open a stored run or sweep by its id prefix and read it as numpy
(or xarray / pandas).

>>> import eosdsl
>>> run = eosdsl.open_run("8143")            # doctest: +SKIP
>>> run                                      # doctest: +SKIP
RunView(81436cc1ad7f 'quickstart' completed, end step 5000, checks 4/4 passed)
>>> steps, sharpness = run.series("sharpness")  # doctest: +SKIP
>>> run.resolved_spec["optimizer"]["lr"]     # doctest: +SKIP
0.0201
>>> ds = run.to_xarray()                     # doctest: +SKIP
>>> sweep = eosdsl.open_sweep("5b02")         # doctest: +SKIP
>>> sweep.table(["final.test_loss", "max.sharpness"])   # doctest: +SKIP

Nothing here imports jax or computes anything: a :class:`RunView` only reads the committed files of a
run (``spec.json``, ``env.json``, ``run.json`` and ``results.zarr``), which never change after commit;
a :class:`SweepView` reads a sweep record (``sweeps/<id>.json``) and its members' runs.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eosdsl.checks.result import CheckResult
from eosdsl.registry.store import AmbiguousRun, Registry, RegistryError, StoredRun, UnknownRun, default_root

if TYPE_CHECKING:
    import pandas
    import xarray

    from eosdsl.registry.sweeps import Sweep
    from eosdsl.spec import models as m

__all__ = ["RunView", "SweepMember", "SweepView", "open_run", "open_sweep", "resolve_expressions"]

XARRAY_HINT = "RunView.to_xarray() needs xarray, which eosdsl does not install: pip install xarray"
PANDAS_HINT = (
    "SweepView.table() needs pandas, which eosdsl does not install: pip install pandas "
    "(or use SweepView.records(), which needs nothing)"
)


def _store(registry: str | os.PathLike | Registry | None) -> Registry:
    return registry if isinstance(registry, Registry) else Registry(default_root(registry))


def _is_sweep(store: Registry, prefix: str) -> bool:
    try:
        store.read_sweep(prefix)
    except AmbiguousRun:
        return True
    except (RegistryError, OSError, ValueError):
        return False
    return True


def open_run(prefix: str, registry: str | os.PathLike | Registry | None = None) -> RunView:
    """The committed run whose run key starts with ``prefix`` (>= 4 hex characters, or a full key).

    ``registry`` is a registry root (or a :class:`~eosdsl.registry.Registry`); ``None`` means
    :func:`eosdsl.registry.default_root` (``$EOSDSL_REGISTRY``, else the checkout's ``registry/``).
    Raises :class:`~eosdsl.registry.UnknownRun` if no run matches (saying "use open_sweep" when
    ``prefix`` is a sweep id) and :class:`~eosdsl.registry.AmbiguousRun` if several do.
    """
    store = _store(registry)
    try:
        return RunView(store.resolve(prefix))
    except UnknownRun:
        if not _is_sweep(store, prefix):
            raise
    raise UnknownRun(f"{prefix!r} is a sweep, not a run: use eosdsl.open_sweep({prefix!r})")


def open_sweep(prefix: str, registry: str | os.PathLike | Registry | None = None) -> SweepView:
    """The sweep whose id starts with ``prefix`` (>= 4 hex characters), as a read-only :class:`SweepView`.

    ``registry`` as for :func:`open_run`. Raises :class:`~eosdsl.registry.UnknownRun` if no sweep
    matches (saying "use open_run" when ``prefix`` is a run id) and
    :class:`~eosdsl.registry.AmbiguousRun` if several do.
    """
    from eosdsl.registry.sweeps import find_sweep

    store = _store(registry)
    try:
        return SweepView(find_sweep(store, prefix))
    except UnknownRun as error:
        try:
            store.resolve(prefix)
        except AmbiguousRun:
            pass
        except (RegistryError, OSError, ValueError):
            raise error from None
    raise UnknownRun(f"{prefix!r} is a run, not a sweep: use eosdsl.open_run({prefix!r})")


# ------------------------------------------------------------------------------------------ expressions

_LITERAL_FIELDS = frozenset({"name", "description", "tags", "sweep", "runtime"})
"""Top-level spec fields whose strings are never expressions (``sweep`` holds unexpanded overrides)."""
_NAME_KEYS = frozenset({"kind", "name", "label", "of", "over", "order", "dtype", "data", "path"})
"""Keys whose string values name things (a kind, a series, a case), never numbers."""


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Any:
    from eosdsl.expr import ExprError, compile_expr

    try:
        return compile_expr(source)
    except (ExprError, RecursionError, ValueError, TypeError):
        return None


def _constant_number(source: str, constants: Mapping[str, float]) -> float | None:
    """``source`` evaluated with NumPy (float64) when it is an expression over ``constants`` alone that
    gives one finite real number; None otherwise (a series name, a condition, a kind, free text)."""
    from eosdsl.expr.compiler import real_number

    expr = _compiled(source)
    if expr is None or not expr.names <= set(constants):
        return None
    try:
        number = real_number(expr.with_numpy(constants), booleans=False)
    except Exception:  # noqa: BLE001 — whatever fails to evaluate stays the string it is
        return None
    return number if number is not None and math.isfinite(number) else None


def resolve_expressions(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a spec document (``spec.json``) with every expression over its ``constants``
    evaluated to its number (float64, with NumPy, as ``eosdsl validate`` evaluates them), e.g.
    ``optimizer.lr: "(2 + eps) / u0**2"`` -> ``0.0201``. Strings that are not such expressions (kinds,
    series names, thresholds over ``mss``, conditions) are kept, as are ``name``, ``description``,
    ``tags``, ``sweep`` and ``runtime``. The values a run used come from JAX in its precision; these
    are float64 and can differ from float32 values in the last bits."""
    raw = spec.get("constants") if isinstance(spec, Mapping) else None
    constants = {
        str(k): float(v)
        for k, v in (raw.items() if isinstance(raw, Mapping) else [])
        if isinstance(v, int | float) and not isinstance(v, bool)
    }

    def walk(value: Any, key: str | None) -> Any:
        if isinstance(value, Mapping):
            return {k: walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str) and key not in _NAME_KEYS:
            number = _constant_number(value, constants)
            return value if number is None else number
        return copy.deepcopy(value)

    return {k: copy.deepcopy(v) if k in _LITERAL_FIELDS else walk(v, str(k)) for k, v in dict(spec).items()}


class RunView:
    """A read-only view of one committed run: its spec, status, check results and series.

    Attributes cannot be set, and every accessor returns a fresh object (copies of the stored JSON, a
    newly validated model, newly read arrays), so changing what it returns never changes the view.
    """

    def __init__(self, run: StoredRun) -> None:
        object.__setattr__(self, "_run", run)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RunView is read-only; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RunView is read-only; cannot delete {name!r}")

    # -------------------------------------------------------------------------------- identity

    @property
    def run(self) -> StoredRun:
        """The underlying registry :class:`~eosdsl.registry.StoredRun`."""
        return self._run

    @property
    def run_key(self) -> str:
        """The full 64-hex run key."""
        return self._run.run_key

    @property
    def short_id(self) -> str:
        """The first 12 characters of the run key, as the CLI prints it."""
        return self._run.short_id

    @property
    def path(self) -> Path:
        """The run's directory in the registry."""
        return self._run.path

    @property
    def name(self) -> str | None:
        """The spec's ``name`` (a sweep point's name carries its label, e.g. ``spec[gd]``)."""
        return self._run.name

    @property
    def spec_id(self) -> str | None:
        """The ``spec_id`` recorded in ``run.json`` (None for runs that did not record it)."""
        value = self._run.info.get("spec_id")
        return str(value) if value is not None else None

    # -------------------------------------------------------------------------------- outcome

    @property
    def status(self) -> str:
        """``completed``, ``stopped`` or ``diverged`` (``unknown`` if not recorded)."""
        return self._run.status

    @property
    def end_step(self) -> int | None:
        """The last step the run reached (None if not recorded)."""
        value = self._run.info.get("end_step")
        return None if value is None else int(value)

    @property
    def checks(self) -> list[CheckResult]:
        """The results of the run's current verdict (the checks it was last judged with), in order."""
        return [CheckResult.from_dict(record) for record in self._run.checks]

    # -------------------------------------------------------------------------------- documents

    @property
    def spec(self) -> dict[str, Any]:
        """A copy of ``spec.json``: the validated spec with every default filled."""
        return copy.deepcopy(self._run.spec)

    @property
    def resolved_spec(self) -> dict[str, Any]:
        """:attr:`spec` with every expression over constants evaluated to its number (float64): the
        same tree, ``optimizer.lr`` ``0.0201`` instead of ``"(2 + eps) / u0**2"``
        (:func:`resolve_expressions`)."""
        return resolve_expressions(self._run.spec)

    def resolved(self, path: str | None = None) -> Any:
        """:attr:`resolved_spec`, or one value of it by dotted path (``run.resolved("optimizer.lr")``;
        list items by index, ``checks.0.below``). ``KeyError`` naming the path if it is not there."""
        value: Any = self.resolved_spec
        for part in path.split(".") if path else []:
            try:
                value = value[int(part)] if isinstance(value, list) else value[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise KeyError(f"the spec of run {self.short_id} has no {path!r}") from None
        return value

    @property
    def spec_model(self) -> m.Spec:
        """``spec.json`` validated as a :class:`~eosdsl.spec.models.Spec` (a new model on every access)."""
        from eosdsl.spec.models import Spec  # imported on demand: reading runs needs no jax/flax

        return Spec.model_validate(self._run.spec)

    @property
    def env(self) -> dict[str, Any]:
        """A copy of ``env.json``: the numerics environment hashed into the run key."""
        return copy.deepcopy(self._run.env)

    @property
    def info(self) -> dict[str, Any]:
        """A copy of ``run.json``: status, events, references, timings, provenance (not checks)."""
        return copy.deepcopy(self._run.info)

    # -------------------------------------------------------------------------------- series

    @property
    def series_names(self) -> list[str]:
        """Sorted names of the stored series (empty if the run stored none)."""
        return self._run.series_names()

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one series; ``KeyError`` listing the available names if missing."""
        return self._run.series(name)

    def __getitem__(self, name: str) -> np.ndarray:
        """The values of series ``name`` (use :meth:`series` for the steps too)."""
        return self.series(name)[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.series_names

    def __iter__(self) -> Iterator[str]:
        """Iterate over the series names (so ``list(view)`` and ``dict``-style loops work)."""
        return iter(self.series_names)

    def to_dict(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every series as ``name -> (steps, values)``."""
        return {name: self.series(name) for name in self.series_names}

    def to_xarray(self) -> xarray.Dataset:
        """Every series as one variable of an ``xarray.Dataset``.

        Series recorded at the same steps share a step dimension: it is ``step`` when every series
        shares it, else ``step_<name>`` after the first (sorted) series recorded at those steps, e.g.
        ``sharpness`` and ``sharpness_residual`` on ``step_sharpness``. Each step dimension has its
        steps as coordinate. Extra value axes (a vector parameter) are ``<name>_dim1``, ``<name>_dim2``...
        Dataset attrs hold the run key, spec id, name, status, end step and check counts.

        Raises ``ImportError`` (saying ``pip install xarray``) when xarray is not installed.
        """
        try:
            import xarray
        except ImportError as err:
            raise ImportError(XARRAY_HINT) from err

        data = self.to_dict()
        groups: list[tuple[np.ndarray, list[str]]] = []
        for name in sorted(data):
            steps = data[name][0]
            for grid, members in groups:
                if np.array_equal(grid, steps):
                    members.append(name)
                    break
            else:
                groups.append((steps, [name]))

        taken = set(data)
        dims: dict[str, str] = {}
        coords: dict[str, tuple[str, np.ndarray]] = {}
        for grid, members in groups:
            dim = _free_name("step" if len(groups) == 1 else f"step_{members[0]}", taken)
            taken.add(dim)
            coords[dim] = (dim, grid)
            for name in members:
                dims[name] = dim

        variables = {}
        for name, (_, values) in data.items():
            extra = []
            for axis in range(1, values.ndim):
                extra_dim = _free_name(f"{name}_dim{axis}", taken)
                taken.add(extra_dim)
                extra.append(extra_dim)
            variables[name] = ((dims[name], *extra), values)

        checks = self.checks
        attrs = {
            "run_key": self.run_key,
            "spec_id": self.spec_id,
            "name": self.name,
            "status": self.status,
            "end_step": self.end_step,
            "checks_passed": sum(c.passed for c in checks),
            "checks_total": len(checks),
        }
        return xarray.Dataset(
            variables, coords=coords, attrs={k: v for k, v in attrs.items() if v is not None}
        )

    # -------------------------------------------------------------------------------- display

    def __repr__(self) -> str:
        checks = self.checks
        passed = sum(c.passed for c in checks)
        end = "?" if self.end_step is None else str(self.end_step)
        return (
            f"RunView({self.short_id} {self.name!r} {self.status}, end step {end}, "
            f"checks {passed}/{len(checks)} passed)"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunView) and self._run == other._run

    def __hash__(self) -> int:
        return hash(self._run)


# ------------------------------------------------------------------------------------------ sweeps


@dataclass(frozen=True)
class SweepMember:
    """One point of a sweep: its label, case label, swept values (``spec path -> value``), run key,
    status (``completed``/``stopped``/``diverged``, or ``failed``/``missing``/``damaged`` when it has no
    readable run), its :class:`RunView` (None without one) and the error that failed it."""

    label: str
    case: str | None
    values: Mapping[str, Any]
    run_key: str
    status: str
    run: RunView | None
    error: str | None = None
    _summaries: Any = field(default=None, repr=False, compare=False)

    def value(self, axis: str) -> Any:
        """The member's value on ``axis`` (a swept spec path, or ``case``); None if it has none."""
        return self.case if axis == "case" else self.values.get(axis)


class SweepView:
    """A read-only view of one sweep: its base spec, swept axes, members (label, swept values, run) and
    sweep-level checks; :meth:`table` puts the swept values against per-run summaries.

    Attributes cannot be set; ``spec`` and member values are copies.
    """

    def __init__(self, sweep: Sweep) -> None:
        members = tuple(
            SweepMember(
                label=mb.label,
                case=mb.case,
                values=copy.deepcopy(dict(mb.values)),
                run_key=mb.run_key,
                status=mb.status,
                run=None if mb.run is None else RunView(mb.run),
                error=mb.error,
                _summaries=mb,
            )
            for mb in sweep.members
        )
        object.__setattr__(self, "_sweep", sweep)
        object.__setattr__(self, "_members", members)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SweepView is read-only; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"SweepView is read-only; cannot delete {name!r}")

    @property
    def sweep_id(self) -> str:
        """The full sweep id (a hash of the base spec and the member run keys)."""
        return self._sweep.sweep_id

    @property
    def short_id(self) -> str:
        return self._sweep.short_id

    @property
    def name(self) -> str:
        return self._sweep.name

    @property
    def created_at(self) -> str:
        return self._sweep.created_at

    @property
    def spec(self) -> dict[str, Any] | None:
        """A copy of the base spec the sweep expanded (None for an old record without one)."""
        return None if self._sweep.spec is None else copy.deepcopy(dict(self._sweep.spec))

    @property
    def axes(self) -> tuple[str, ...]:
        """The swept spec paths no case sets (grid and ``-m`` axes), in expansion order, with ``case``
        first when the members have case labels."""
        return (("case",) if self._sweep.cases else ()) + tuple(self._sweep.axes)

    @property
    def members(self) -> tuple[SweepMember, ...]:
        return self._members

    @property
    def checks(self) -> list[CheckResult]:
        """The sweep-level check results (``ordering``, ``trend``…) as recorded."""
        return [CheckResult.from_dict(record) for record in self._sweep.checks]

    @property
    def series_names(self) -> list[str]:
        """Every series some member run stored."""
        return self._sweep.series_names()

    @property
    def check_names(self) -> list[str]:
        """Every per-run check name some member run recorded."""
        return self._sweep.check_names()

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[SweepMember]:
        return iter(self._members)

    def __getitem__(self, key: int | str) -> SweepMember:
        """A member by position or by label (``sweep["gd"]``)."""
        if isinstance(key, int):
            return self._members[key]
        for member in self._members:
            if member.label == key or member.case == key:
                return member
        raise KeyError(f"sweep {self.short_id} has no member {key!r}; labels: {[m.label for m in self]}")

    def records(self, summaries: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One dict per member: ``label``, its value on each of :attr:`axes`, ``run`` (short id),
        ``status`` and each summary. Summaries are ``eosdsl query`` fields as ``eosdsl show -s`` takes
        them — ``final.S``, ``min.S``, ``max.S``, ``argmin.S``, ``argmax.S``, ``count.S`` of a series
        ``S``, ``check.NAME``, ``check.NAME.margin`` — default ``final.sharpness`` and ``final.loss``
        (those some run has). A member without the run or series gets None; ``ValueError``
        (:class:`~eosdsl.registry.sweeps.SummaryError`) names what is available for a bad summary."""
        from eosdsl.registry.sweeps import default_summaries, parse_summaries, summary_value

        if summaries is None:
            parsed = default_summaries(self._sweep)
        else:
            parsed = parse_summaries([summaries] if isinstance(summaries, str) else summaries, self._sweep)
        rows = []
        for member in self._members:
            row: dict[str, Any] = {"label": member.label}
            row.update({axis: member.value(axis) for axis in self.axes})
            row["run"] = member.run_key[:12]
            row["status"] = member.status
            for summary in parsed:
                row[summary.text] = summary_value(member._summaries.run, summary)
            rows.append(row)
        return rows

    def table(self, summaries: Sequence[str] | None = None) -> pandas.DataFrame:
        """:meth:`records` as a ``pandas.DataFrame`` indexed by member label: a column per axis, then
        ``run``, ``status`` and a column per summary (NaN/None where a member has no value).

        Raises ``ImportError`` (saying ``pip install pandas``) when pandas is not installed.
        """
        try:
            import pandas
        except ImportError as err:
            raise ImportError(PANDAS_HINT) from err
        rows = self.records(summaries)
        frame = pandas.DataFrame.from_records(rows, columns=list(rows[0]) if rows else ["label"])
        return frame.set_index("label")

    def __repr__(self) -> str:
        statuses: dict[str, int] = {}
        for member in self._members:
            statuses[member.status] = statuses.get(member.status, 0) + 1
        counts = ", ".join(f"{n} {s}" for s, n in statuses.items()) or "no members"
        axes = ", ".join(self.axes) or "labels only"
        return f"SweepView({self.short_id} {self.name!r}: {len(self)} points over {axes}; {counts})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SweepView) and self.sweep_id == other.sweep_id

    def __hash__(self) -> int:
        return hash(self.sweep_id)


def _free_name(name: str, taken: set[str]) -> str:
    """``name``, with underscores appended until it is not in ``taken``."""
    while name in taken:
        name += "_"
    return name
