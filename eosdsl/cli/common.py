"""What every command shares: the app, consoles, the registry option, failing with a message."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.segment import Segment

from eosdsl.spec.errors import SpecError, safe_text

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Edge-of-stability experiments as YAML specs: compiled with JAX, stored by content hash.",
)
registry_app = typer.Typer(no_args_is_help=True, help="Maintain the registry: verify, gc, reindex.")
app.add_typer(registry_app, name="registry")


def _print_version(value: bool) -> None:
    if value:
        from eosdsl import __version__

        print(f"eosdsl {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the eosdsl version and exit."
        ),
    ] = False,
) -> None:
    """Edge-of-stability experiments as YAML specs: compiled with JAX, stored by content hash."""


def terminal_safe(text: str) -> str:
    """``text`` with control and format characters escaped (``\\x1b``), line breaks and tabs kept."""
    if text.isprintable():
        return text
    return "\n".join("\t".join(safe_text(part) for part in line.split("\t")) for line in text.split("\n"))


class SafeConsole(Console):
    """A rich console that escapes control characters in what it prints: a run name, label, tag,
    description, check detail or error message holding ``ESC [2J`` shows as ``\\x1b[2J`` instead of
    clearing the terminal. Rich's own control output (styles, progress-bar cursor moves) is kept."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        safe = (
            segment if segment.control else Segment(terminal_safe(segment.text), segment.style)
            for segment in buffer
        )
        return super()._render_buffer(safe)


out = SafeConsole(highlight=False, soft_wrap=True)
err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)

RegistryOption = Annotated[
    Path | None,
    typer.Option("--registry", help="Registry root (default: $EOSDSL_REGISTRY, else registry/ in the repo)."),
]


def open_registry(path: Path | None):
    """The registry at ``path`` (or the default root)."""
    from eosdsl.registry import Registry, default_root

    return Registry(default_root(path))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code`` (2: bad input)."""
    err.print(message, markup=False)
    raise typer.Exit(code)


def spec_error(error: SpecError) -> NoReturn:
    fail(str(error))


def resolve_run(run_id: str, registry: Path | None):
    """The stored run with id prefix ``run_id``, or exit 2 with the registry's message."""
    from eosdsl.registry import RegistryError

    try:
        return open_registry(registry).resolve(run_id)
    except RegistryError as error:
        fail(str(error))


def print_check(check: dict, name: str | None = None) -> bool:
    """Print one check line (under ``name`` if given, else its own); True if it failed."""
    applicable = check.get("applicable", True)
    mark = ("✓" if check["passed"] else "✗") if applicable else "n/a"
    out.print(f"  {mark} {check['name'] if name is None else name}: {check['detail']}", markup=False)
    return not check["passed"]


def distinct_names(names: Sequence[str]) -> list[str]:
    """``names`` with each one that occurs more than once numbered in order (``final sharpness #1``,
    ``final sharpness #2``: two ``final`` checks of one series have the same default name)."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        if counts[name] > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name} #{seen[name]}"
        labels.append(name)
    return labels


def print_checks(checks: Sequence[dict]) -> bool:
    """Print check lines, same-named checks numbered (:func:`distinct_names`); True if one failed."""
    failed = False
    for check, name in zip(checks, distinct_names([str(c["name"]) for c in checks]), strict=True):
        failed |= print_check(check, name)
    return failed


def event_lines(info: Any) -> list[str]:
    """``event halt: fired at step 18`` / ``event never: did not fire`` for each event of a ``run.json``."""
    events = info.get("events") if isinstance(info, dict) else None
    lines = []
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        fired = event.get("fired_at")
        when = f"fired at step {fired}" if fired is not None else "did not fire"
        kind = f" ({event['kind']})" if event.get("kind") not in (None, "", "event") else ""
        lines.append(f"event {event.get('name')}{kind}: {when}")
    return lines


# ------------------------------------------------------------------------------------------- progress

LOG_EVERY_S = 10.0
"""Without a terminal, a run or pack logs its steps at most this often (plus its first chunk and its end)."""


def use_bar() -> bool:
    """Whether progress is drawn as a rich display (stderr is a terminal and ``CI`` is not set)."""
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true", "yes")


def format_rate(rate: float) -> str:
    """Steps per second for a human: ``12,345`` from 100 up, three significant digits below."""
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def ends_text(ends: Sequence[tuple[str, int]], steps: int) -> str:
    """How a run or pack ended: ``completed at step 5000``, ``stopped at step 548 of 3000``, or for a pack
    ``3 completed at step 5000, 1 diverged at step 120`` (``at steps 120–900`` when they differ)."""
    if len(ends) == 1:
        status, end = ends[0]
        return f"{status} at step {end}" + (f" of {steps}" if end < steps else "")
    parts = []
    for status in dict.fromkeys(s for s, _ in ends):
        at = [e for s, e in ends if s == status]
        where = f"step {at[0]}" if min(at) == max(at) else f"steps {min(at)}–{max(at)}"
        parts.append(f"{len(at)} {status} at {where}")
    return ", ".join(parts)


def runs_text(runs: int) -> str:
    """``1 run``, ``100 runs``."""
    return f"{runs} run" + ("" if runs == 1 else "s")


class RateClock:
    """Steps per second of the computing phase of one run or pack, from the chunk callbacks.

    The first chunk includes compilation, so the rate is measured from the end of the first chunk on;
    an interval during which results were written (a pack storing members that ended early) is left out.
    Until two chunks have been seen there is no rate (``None``), never a rate over a near-zero interval.
    """

    def __init__(self) -> None:
        self.steps, self.seconds = 0, 0.0  # measured so far (closed intervals)
        self.last: tuple[int, float] | None = None  # (steps, time) of the latest chunk callback
        self.dirty = False  # results were written since ``last``: the next interval does not count

    def chunk(self, done: int, now: float) -> None:
        """A chunk ended with ``done`` steps measured, at ``now``."""
        if self.last is not None and not self.dirty and done > self.last[0] and now > self.last[1]:
            self.steps += done - self.last[0]
            self.seconds += now - self.last[1]
        self.last, self.dirty = (done, now), False

    def writing(self) -> None:
        """Results are being written: the time until the next chunk is not computing time."""
        self.dirty = True

    @property
    def rate(self) -> float | None:
        """Steps per second so far, or None before a full chunk after the first one has been timed."""
        return self.steps / self.seconds if self.steps and self.seconds > 0 else None


class RunProgress:
    """The progress callback of one pack (a ``Progress`` of ``eosdsl.engine.execute``): the steps of each
    chunk, then ``writing`` and ``ended``. One callback may serve several runs in turn (points of a pack
    resumed from different checkpoints run as separate groups): each ``ended`` starts afresh."""

    def __init__(self, owner: SweepProgress, name: str) -> None:
        self.owner, self.name = owner, name
        self._reset(owner.clock())

    def _reset(self, now: float) -> None:
        self.started, self.rates, self.task = now, RateClock(), None
        self.first_chunk_s: float | None = None
        self.logged, self.written = -math.inf, 0
        self.writing_since: float | None = None  # the writes after the last chunk began

    def __call__(self, done: int, total: int) -> None:
        now = self.owner.clock()
        self.writing_since, self.written = None, 0  # a chunk ran since: the end reports its own writes
        if self.first_chunk_s is None:
            self.first_chunk_s = now - self.started
        self.rates.chunk(done, now)
        rate = self.rates.rate
        eta = "" if rate is None else f"ETA {max(total - done, 0) / rate:.0f} s"
        bar = self.owner.bar
        if bar is not None:
            rate_text = "compiling…" if rate is None else f"{format_rate(rate)} steps/s"
            if self.task is None:
                self.task = bar.add_task(self.name, total=total, rate="", eta="")
            bar.update(self.task, description=self.name, completed=done, total=total, rate=rate_text, eta=eta)
        elif now - self.logged >= LOG_EVERY_S:  # the first chunk always logs
            self.logged = now
            if rate is None:
                speed = f"first chunk {self.first_chunk_s:.1f} s (incl. compilation)"
            else:
                speed = f"{format_rate(rate)} steps/s, {eta}"
            self.owner.log(f"{self.name}: step {done}/{total}, {speed}{self.owner.points_text()}")

    def writing(self, runs: int) -> None:
        """``runs`` runs have ended; their results are being written."""
        now = self.owner.clock()
        self.rates.writing()
        if self.writing_since is None:
            self.writing_since = now
        self.written += runs
        text = f"{self.name}: writing results of {runs_text(runs)}…"
        if self.owner.bar is not None and self.task is not None:
            self.owner.bar.update(self.task, description=text)
        elif self.owner.bar is None:
            self.owner.log(text)

    def ended(self, ends: Sequence[tuple[str, int]], total: int) -> None:
        """The run or pack is over: ``(status, end step)`` per member."""
        now = self.owner.clock()
        if self.owner.bar is not None:
            if self.task is not None:
                self.owner.bar.remove_task(self.task)
        else:
            self.owner.log(self.summary(ends, total, now))
        self._reset(now)

    def summary(self, ends: Sequence[tuple[str, int]], total: int, now: float) -> str:
        """The log line of a finished run or pack: how it ended, its rate, and how long writing took."""
        rate = self.rates.rate
        if rate is not None:
            speed = f", {format_rate(rate)} steps/s"
        elif self.first_chunk_s is not None:
            speed = f" after {self.first_chunk_s:.1f} s (one chunk, incl. compilation)"
        else:
            speed = " (nothing left to compute)"
        line = f"{self.name}: {ends_text(ends, total - 1)}{speed}"
        if self.written and self.writing_since is not None:
            line += f"; results of {runs_text(self.written)} written in {now - self.writing_since:.1f} s"
        return line


class SweepProgress:
    """Progress of a run or a sweep (an ``eosdsl.orchestration.SweepReporter``).

    On a terminal: a rich display with the points done, the current pack's steps, steps/s and ETA, and
    "writing results of N runs…" while they are stored. Otherwise (not a terminal, or ``CI=true``): a
    plan line for a sweep, a log line per run or pack after its first chunk (its time includes
    compilation), at most every 10 s after that, one when results are written and one when it ends
    (``stopped at step 548 of 3000``). Rates count the steps after the first chunk over their wall time.
    ``clock`` and ``bar`` are for tests (a fake clock; ``bar=False`` forces log lines).
    """

    def __init__(
        self, name: str, clock: Callable[[], float] = time.monotonic, bar: bool | None = None
    ) -> None:
        self.name, self.clock = name, clock
        self.bar = None
        self.points_task = None
        self.points, self.done, self.packs = 0, 0, 0
        if use_bar() if bar is None else bar:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("{task.fields[eta]}"),
                console=err,
                transient=True,
            )

    def __enter__(self) -> SweepProgress:
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar:
            self.bar.__exit__(*exc)

    def log(self, line: str) -> None:
        """One log line on stderr (no markup)."""
        err.print(line, markup=False)

    def points_text(self) -> str:
        """``; points 3/40`` for a sweep, else nothing."""
        return f"; points {self.done}/{self.points}" if self.points > 1 else ""

    def planned(self, points: int, reused: int, packs: list[int], notes: Sequence[str] = ()) -> None:
        self.points, self.packs = points, len(packs)
        for note in notes:
            self.log(f"note: {note}")
        if points > 1:
            if self.bar:
                self.points_task = self.bar.add_task(f"{self.name}: points", total=points, rate="", eta="")
            else:
                self.log(
                    f"{self.name}: {points} points, {reused} stored, {points - reused} to run in "
                    f"{len(packs)} packs"
                )

    def finished(self, outcome) -> None:
        self.done += 1
        if self.bar and self.points_task is not None:
            self.bar.update(self.points_task, completed=self.done)

    def pack(self, index: int, labels: list[str]) -> RunProgress:
        name = labels[0] if len(labels) == 1 else f"pack {index + 1}/{self.packs} ({len(labels)} points)"
        return RunProgress(self, name)
