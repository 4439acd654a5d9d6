"""What every command shares: the app, consoles, the registry option, failing with a message."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.segment import Segment

from eosdsl.spec.errors import SpecError, safe_text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Edge-of-stability experiments as YAML specs: compiled with JAX, stored by content hash.",
)
registry_app = typer.Typer(no_args_is_help=True, help="Maintain the registry: verify, gc, reindex.")
app.add_typer(registry_app, name="registry")



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


def print_check(check: dict) -> bool:
    """Print one check line; True if it failed."""
    applicable = check.get("applicable", True)
    mark = ("✓" if check["passed"] else "✗") if applicable else "n/a"
    out.print(f"  {mark} {check['name']}: {check['detail']}", markup=False)
    return not check["passed"]


# ------------------------------------------------------------------------------------------- progress


def use_bar() -> bool:
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true", "yes")


class SweepProgress:
    """Progress of a run or a sweep (an ``eosdsl.runs.SweepReporter``).

    On a terminal: a rich display with the points done, the current pack's steps, steps/s and ETA.
    Otherwise (not a terminal, or ``CI=true``): a log line on stderr at most every 10 s and at the end
    of each pack.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.bar = None
        self.points_task = None
        self.points, self.done, self.packs = 0, 0, 0
        if use_bar():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
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

    def planned(self, points: int, reused: int, packs: list[int]) -> None:
        self.points, self.packs = points, len(packs)
        if points > 1:
            if self.bar:
                self.points_task = self.bar.add_task(f"{self.name}: points", total=points, rate="")
            else:
                err.print(
                    f"{self.name}: {points} points, {reused} stored, {points - reused} to run in "
                    f"{len(packs)} packs",
                    markup=False,
                )

    def finished(self, outcome) -> None:
        self.done += 1
        if self.bar and self.points_task is not None:
            self.bar.update(self.points_task, completed=self.done)

    def pack(self, index: int, labels: list[str]):
        name = labels[0] if len(labels) == 1 else f"pack {index + 1}/{self.packs} ({len(labels)} points)"
        # One callback may serve several runs in turn (points of a pack resumed from different
        # checkpoints run as separate groups): a bar (and the rate's clock) per run, each removed at its end.
        now = {"task": None, "started": 0.0, "last": -1, "logged": 0.0}

        def update(done: int, total: int) -> None:
            if done == now["last"]:
                return
            if now["last"] < 0:
                now["started"] = time.monotonic()
                if self.bar:
                    now["task"] = self.bar.add_task(name, total=total, rate="")
            now["last"] = done
            rate = done / max(time.monotonic() - now["started"], 1e-9)
            if self.bar:
                self.bar.update(now["task"], completed=done, total=total, rate=f"{rate:,.0f} steps/s")
            elif time.monotonic() - now["logged"] > 10 or done >= total:
                now["logged"] = time.monotonic()
                eta = (total - done) / rate if rate > 0 else float("nan")
                points = f"; points {self.done}/{self.points}" if self.points > 1 else ""
                err.print(
                    f"{name}: step {done}/{total}, {rate:,.0f} steps/s, ETA {eta:.0f} s{points}", markup=False
                )
            if done >= total:
                if self.bar:
                    self.bar.remove_task(now["task"])
                now["last"] = -1

        return update
