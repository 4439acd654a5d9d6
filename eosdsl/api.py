"""The Python API for notebooks: open a stored run by its id prefix and read it as numpy (or xarray).

>>> import eosdsl
>>> run = eosdsl.open_run("3f2a9c")          # doctest: +SKIP
>>> run                                      # doctest: +SKIP
RunView(3f2a9c1b0d4e 'quickstart' completed, end step 5000, checks 4/4 passed)
>>> steps, sharpness = run.series("sharpness")  # doctest: +SKIP
>>> ds = run.to_xarray()                     # doctest: +SKIP

Nothing here imports jax or computes anything: a :class:`RunView` only reads the committed files of a
run (``spec.json``, ``env.json``, ``run.json`` and ``results.zarr``), which never change after commit.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eosdsl.checks.result import CheckResult
from eosdsl.registry.store import Registry, Run, default_root

if TYPE_CHECKING:
    import xarray

    from eosdsl.spec import models as m

__all__ = ["RunView", "open_run"]

XARRAY_HINT = "RunView.to_xarray() needs xarray, which eosdsl does not install: pip install xarray"


def open_run(prefix: str, registry: str | os.PathLike | Registry | None = None) -> RunView:
    """The committed run whose run key starts with ``prefix`` (>= 4 hex characters, or a full key).

    ``registry`` is a registry root (or a :class:`~eosdsl.registry.Registry`); ``None`` means
    :func:`eosdsl.registry.default_root` (``$EOSDSL_REGISTRY``, else the checkout's ``registry/``).
    Raises :class:`~eosdsl.registry.UnknownRun` if no run matches and
    :class:`~eosdsl.registry.AmbiguousRun` if several do.
    """
    store = registry if isinstance(registry, Registry) else Registry(default_root(registry))
    return RunView(store.resolve(prefix))


class RunView:
    """A read-only view of one committed run: its spec, status, check results and series.

    Attributes cannot be set, and every accessor returns a fresh object (copies of the stored JSON, a
    newly validated model, newly read arrays), so changing what it returns never changes the view.
    """

    def __init__(self, run: Run) -> None:
        object.__setattr__(self, "_run", run)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RunView is read-only; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"RunView is read-only; cannot delete {name!r}")

    # -------------------------------------------------------------------------------- identity

    @property
    def run(self) -> Run:
        """The underlying registry :class:`~eosdsl.registry.Run`."""
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


def _free_name(name: str, taken: set[str]) -> str:
    """``name``, with underscores appended until it is not in ``taken``."""
    while name in taken:
        name += "_"
    return name
