"""Runs that start from other runs: ``stages`` of a spec, or another spec file (``start``, paper 000
App. E.5).

A stage is the spec itself with some keys set: ``stages: {pretrain: {optimizer: {...}, train.steps: ...}}``
sets dotted key paths as a case's ``set`` does, on the spec without ``sweep``, ``stages``, ``start``,
``checks`` and ``events`` (the run's own claims and optimizer switches are not the stage's). So a sweep
point's stage inherits the point's problem, seed and measures unless the stage sets them: points that
differ only in what the stage replaces share one stage run.

``start: {spec: ../pretrain.yaml}`` starts from the run of another spec file instead (a path relative to
this spec's file — or, given on the command line, to the working directory — made absolute when the
spec is loaded, :func:`anchored`). The upstream spec is loaded
as it is (it inherits nothing) and must be one run: a spec with a sweep is refused (write the point
needed as its own spec). A spec that starts from itself, directly or through others, is refused
(:func:`load_upstream`).

Before a spec with ``start`` runs, its upstream run is run (or found stored) and the spec is *resolved*
(:func:`resolved_data`): ``start.run`` names the upstream run, the ``start.values`` computed on its record
join ``constants``, ``stages`` and the upstream file's path are dropped (the upstream run's key says all
of it), so the resolved spec's identity holds the upstream run and the numbers read from it, never a
path string.

``start.at`` picks the upstream run's state: ``final``, ``{step: N}`` (w_N) or ``{event: name}`` (w_t at
the first step t the event fired). :func:`start_step` gives that step from the run's record.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eosdsl.spec import models as m
from eosdsl.spec.errors import LocatedError, SpecError
from eosdsl.spec.overrides import apply_overrides, split_dotted

if TYPE_CHECKING:
    from eosdsl.spec.load import Loaded

NOT_IN_STAGE = ("sweep", "stages", "start", "checks", "events")
"""Top-level keys a stage does not inherit from the spec, and may not set."""


def stage_data(spec: m.Spec, stage: str, name: str | None = None) -> dict[str, Any]:
    """The raw spec of ``spec``'s stage ``stage``, named ``<name>.<stage>`` (``name``: the spec's base
    name, the same for every point of a sweep so that points sharing a stage share its run).
    Raises ``OverrideError`` for a key path that cannot be set, ``KeyError`` for an unknown stage."""
    data = {k: v for k, v in spec.model_dump(mode="json").items() if k not in NOT_IN_STAGE}
    data["name"] = f"{name or spec.name}.{stage}"
    return apply_overrides(data, [(split_dotted(k), v) for k, v in spec.stages[stage].items()])


def resolved_data(spec: m.Spec, run_key: str, values: Mapping[str, float]) -> dict[str, Any]:
    """The raw spec of ``spec`` started from the stage run ``run_key`` with the ``start.values`` found
    on it: ``start.run`` set, the values added to ``constants``, ``stages`` dropped."""
    assert spec.start is not None
    data = spec.model_dump(mode="json")
    data.pop("stages", None)
    data["constants"] = {**spec.constants, **{k: float(v) for k, v in values.items()}}
    start = {k: v for k, v in data["start"].items() if k != "spec"}  # the path: the run key stands for it
    data["start"] = {**start, "run": run_key}
    return data


def as_stored(spec: m.Spec, stored: Mapping[str, Any]) -> m.Spec:
    """``spec`` resolved as the stored spec document ``stored`` (a run's ``spec.json``) was: started
    from the same stage run with the values found then; ``spec`` itself when either has no ``start`` to
    match (so a spec file can be matched to the runs it made, ``eosdsl check --spec``)."""
    start, constants = stored.get("start"), stored.get("constants")
    if spec.start is None or spec.start.run is not None or not isinstance(start, dict):
        return spec
    if not isinstance(constants, dict) or not isinstance(start.get("run"), str):
        return spec
    try:
        values = {name: float(constants[name]) for name in spec.start.values}
    except (KeyError, TypeError, ValueError):
        return spec
    return m.Spec.model_validate(resolved_data(spec, start["run"], values))


def resolved_start_errors(spec: m.Spec) -> list[LocatedError]:
    """The errors of a resolved ``start`` (one with ``run``, as :func:`resolved_data` makes it), which
    eosdsl takes as it is: ``run`` is a whole run key (64 hex characters), and every ``start.values``
    name is already in ``constants`` (the number read from the upstream run). A hand-written ``start``
    with ``run`` and values not in ``constants`` would run with those values silently missing: refused,
    pointing at ``stage``/``spec``, which eosdsl resolves."""
    start = spec.start
    if start is None or start.run is None:
        return []
    errors = []
    if not re.fullmatch(r"[0-9a-f]{64}", start.run):
        message = f"'{start.run}' is not a run key (64 lowercase hex characters; `eosdsl ls` lists them)"
        errors.append(LocatedError(("start", "run"), message))
    for name in start.values:
        if name not in spec.constants:
            message = (
                f"'{name}' is not in `constants`: a start with `run` is a resolved one, whose values are "
                "the numbers read from that run. Give `stage` or `spec` (without `run`) and eosdsl reads "
                "them; or set the number in `constants`"
            )
            errors.append(LocatedError(("start", "values", name), message))
    return errors


START_STEP = "start_step"
"""The name, in ``start.values`` expressions, of the step of the upstream state the run starts from."""


def recorded_events(spec: m.Spec) -> list[tuple[str, str]]:
    """(label, kind) of each event a run of ``spec`` records (``run.json`` ``events``, in the order of
    the program's ``fired_at``): each event's ``name`` (or ``event i``) with kind ``event``, then
    ``stop rule i`` with kind ``stop`` for each stop rule."""
    labels = [(e.name or f"event {i}", "event") for i, e in enumerate(spec.events)]
    return labels + [(f"stop rule {i}", "stop") for i in range(len(spec.train.stop))]


def event_labels(spec: m.Spec) -> list[str]:
    """The labels of :func:`recorded_events` (what ``start.at.event`` may name)."""
    return [label for label, _ in recorded_events(spec)]


def start_step(at: Any, end_step: int, events: list[dict[str, Any]]) -> int:
    """The step of the upstream state ``at`` (``start.at``) of a run that ended at ``end_step`` with the
    recorded ``events`` (``run.json``: name, kind, fired_at). Raises ``ValueError`` (a message) for a step
    after the run ended or an event that never fired."""
    if at == "final":
        return end_step
    if isinstance(at, m.AtStep):
        if at.step > end_step:
            raise ValueError(f"start.at.step: step {at.step} is after the upstream run ended ({end_step})")
        return at.step
    assert isinstance(at, m.AtEvent)
    found = [e for e in events if e.get("name") == at.event]
    if not found:
        known = ", ".join(repr(e.get("name")) for e in events) or "none"
        raise ValueError(f"start.at.event: the upstream run has no event {at.event!r} (its events: {known})")
    fired = found[0].get("fired_at")
    if fired is None:
        raise ValueError(f"start.at.event: the event {at.event!r} never fired in the upstream run")
    return int(fired)


def anchored(data: Any, directory: str) -> Any:
    """``data`` (a raw spec) with a relative ``start.spec`` made an absolute path, read relative to
    ``directory``; an absolute one is kept. The loader anchors the spec file's own ``start.spec`` and
    each sweep point's (set by a case or a grid of the file) at the file's directory, as a YAML include
    is, so the spec means the same from any working directory; a command-line override's
    (:func:`anchored_assignment`) at the working directory, as any path typed in a shell is."""
    if not isinstance(data, dict) or not isinstance(data.get("start"), dict):
        return data
    path = data["start"].get("spec")
    if not isinstance(path, str) or not path:
        return data
    full = os.path.normpath(os.path.join(os.path.abspath(directory), os.path.expanduser(path)))
    return {**data, "start": {**data["start"], "spec": full}}


def anchored_assignment(path: tuple[str | int, ...], value: Any, directory: str) -> Any:
    """The value of the assignment ``path = value`` (a command-line override, or a value of a ``-m``
    axis) with the ``start.spec`` it sets, if any, made absolute relative to ``directory``
    (:func:`anchored`): ``start.spec=FILE`` or ``start={spec: FILE, ...}``."""
    path = tuple(path)
    if path == ("start", "spec"):
        return anchored({"start": {"spec": value}}, directory)["start"]["spec"]
    if path == ("start",):
        return anchored({"start": value}, directory)["start"]
    return value


_CHAIN: ContextVar[tuple[str, ...]] = ContextVar("eosdsl_start_chain", default=())
"""The spec files being loaded, outermost first: a ``start.spec`` among them is a cycle."""
_Memo = dict[tuple[str, tuple[str, ...]], Any]
_LOADED: ContextVar[_Memo | None] = ContextVar("eosdsl_upstreams", default=None)
"""Upstream files loaded during the outermost :func:`loading` (each point of a sweep validates its
``start.spec``: the file is read and validated once per load of the downstream spec)."""


@contextlib.contextmanager
def loading(filename: str) -> Iterator[None]:
    """Mark ``filename`` as being loaded (for the cycle check of :func:`load_upstream`)."""
    token = _CHAIN.set((*_CHAIN.get(), os.path.normpath(os.path.abspath(filename))))
    fresh = _LOADED.set({}) if _LOADED.get() is None else None
    try:
        yield
    finally:
        if fresh is not None:
            _LOADED.reset(fresh)
        _CHAIN.reset(token)


@dataclass(frozen=True)
class CycleError(LocatedError):
    """A ``start.spec`` chain that comes back to a spec being loaded (raised by the innermost load, and
    reported once at each level above without the nesting)."""


def _shown(path: str) -> str:
    """``path`` relative to the working directory when that is shorter (error messages)."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return relative if len(relative) < len(path) else path


def load_upstream(path: str) -> tuple[Loaded | None, list[LocatedError]]:
    """The upstream spec file ``path`` (``start.spec``, absolute), loaded and validated, or the errors at
    ``start.spec`` that say why not: a missing or unreadable file, an invalid spec (its first errors, with
    file, line and key path), a sweep (a run starts from one run), or a cycle (a spec that starts from
    itself, directly or through others)."""
    chain, full = _CHAIN.get(), os.path.normpath(path)
    memo = _LOADED.get()
    if memo is None:
        return _load_upstream(full, chain)
    if (full, chain) not in memo:
        memo[(full, chain)] = _load_upstream(full, chain)
    return memo[(full, chain)]


def _load_upstream(full: str, chain: tuple[str, ...]) -> tuple[Loaded | None, list[LocatedError]]:
    from eosdsl.spec.load import load  # load imports this module

    here = ("start", "spec")
    if full in chain:
        cycle = " → ".join(_shown(p) for p in (*chain[chain.index(full) :], full))
        message = f"a cycle: {cycle} (a spec cannot start from itself, directly or through others)"
        return None, [CycleError(here, message)]
    if not os.path.isfile(full):
        return None, [LocatedError(here, f"no such spec file: {_shown(full)}")]
    try:
        loaded = load(full)
    except SpecError as err:
        cycle = [e for e in err.errors if e.path == here and isinstance(e, CycleError)]
        if cycle:  # found further up the chain: the same cycle, said here without the nesting
            return None, [CycleError(here, cycle[0].message)]
        shown = "; ".join(e.format(_shown(err.filename)) for e in err.sorted_errors()[:3])
        more = f" (and {len(err.errors) - 3} more)" if len(err.errors) > 3 else ""
        return None, [LocatedError(here, f"the upstream spec is not valid: {shown}{more}")]
    except OSError as err:
        return None, [LocatedError(here, f"cannot read the upstream spec {_shown(full)}: {err}")]
    if loaded.spec.sweep is not None:
        message = (
            f"the upstream spec {_shown(full)} has a sweep; a run starts from one run: write the point "
            "you need as its own spec (or as a stage of this spec)"
        )
        return None, [LocatedError(here, message)]
    return loaded, []
