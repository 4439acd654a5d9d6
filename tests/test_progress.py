"""The progress reporter's text (``eosdsl.cli.common.SweepProgress``), with a fake clock, and
what the engine tells it (the real stop point, the write phase)."""

from __future__ import annotations

import re

from eosdsl.cli.common import RateClock, SweepProgress, ends_text, format_rate
from eosdsl.engine.execute import execute, prepare, report_writing
from eosdsl.engine.packs import execute_pack
from eosdsl.spec.load import load


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


class Recorder(SweepProgress):
    """A log-line progress display that keeps its lines instead of printing them."""

    def __init__(self, name: str = "gd", clock: FakeClock | None = None) -> None:
        super().__init__(name, clock=clock or FakeClock(), bar=False)
        self.lines: list[str] = []

    def log(self, line: str) -> None:
        self.lines.append(line)


def _rates(lines: list[str]) -> list[float]:
    return [float(r.replace(",", "")) for line in lines for r in re.findall(r"([\d,.]+) steps/s", line)]


# ---------------------------------------------------------------------------------- the reporter's text


def test_rate_excludes_the_first_chunk_and_is_never_absurd() -> None:
    """The old display divided the steps by the time since the *last* callback when a run's end was
    reported after its last chunk: ``step 100001/100001, 127,878,530,444 steps/s``. The rate now counts the
    steps after the first chunk (which includes compilation) over their wall time."""
    clock = FakeClock()
    progress = Recorder("gd", clock)
    update = progress.pack(0, ["gd"])
    clock.tick(5.0)  # compilation and the first chunk
    update(20000, 100001)
    for done in range(40000, 100001, 20000):
        clock.tick(2.0)  # 10,000 steps/s
        update(done, 100001)
    clock.tick(1.0)
    update(100001, 100001)  # a short last chunk: 1 step in 1 s would be a silly rate on its own
    update.ended([("completed", 100000)], 100001)
    assert progress.lines[0] == "gd: step 20000/100001, first chunk 5.0 s (incl. compilation)"
    rates = _rates(progress.lines)
    assert rates and all(7000 < r <= 10000 for r in rates), progress.lines
    assert progress.lines[-1] == "gd: completed at step 100000, 8,889 steps/s"  # 80001 steps in 9 s
    assert all("100001/100001" not in line or "ETA 0 s" in line for line in progress.lines)


def test_end_reported_at_once_gives_no_rate() -> None:
    """A run whose only chunk ends it, and a run reported twice at the same clock reading, show no rate
    at all (rather than steps over a near-zero interval)."""
    clock = FakeClock()
    progress = Recorder("gd", clock)
    update = progress.pack(0, ["gd"])
    clock.tick(1.5)
    update(5001, 5001)
    update(5001, 5001)  # repeated at the same instant
    update.ended([("completed", 5000)], 5001)
    assert progress.lines == [
        "gd: step 5001/5001, first chunk 1.5 s (incl. compilation)",
        "gd: completed at step 5000 after 1.5 s (one chunk, incl. compilation)",
    ]
    assert RateClock().rate is None


def test_a_run_that_stops_early_says_where() -> None:
    """A run stopped at step 548 of 3000 used to end its display at ``step 3001/3001``."""
    clock = FakeClock()
    progress = Recorder("fmnist-mlp", clock)
    update = progress.pack(0, ["fmnist-mlp"])
    for done in (200, 400, 549):
        clock.tick(1.0)
        update(done, 3001)
    update.ended([("stopped", 548)], 3001)
    assert progress.lines[-1] == "fmnist-mlp: stopped at step 548 of 3000, 174 steps/s"
    assert not any("3001/3001" in line for line in progress.lines)


def test_ends_text() -> None:
    assert ends_text([("completed", 5000)], 5000) == "completed at step 5000"
    assert ends_text([("diverged", 12)], 5000) == "diverged at step 12 of 5000"
    ends = [("completed", 5000), ("diverged", 12), ("completed", 5000), ("diverged", 900)]
    assert ends_text(ends, 5000) == "2 completed at step 5000, 2 diverged at steps 12–900"
    assert format_rate(127878.4) == "127,878" and format_rate(3.14159) == "3.14"


def test_the_write_phase_is_reported_and_left_out_of_the_rate() -> None:
    """A packed sweep's display froze for ~40 s while its results were written; now it says so, and the
    time spent writing members that ended early does not lower the steps/s."""
    clock = FakeClock()
    progress = Recorder("sweep", clock)
    progress.planned(100, 0, [100])
    update = progress.pack(0, [f"p{i}" for i in range(100)])
    clock.tick(3.0)
    update(1000, 3001)
    clock.tick(1.0)
    update(2000, 3001)  # 1000 steps/s
    update.writing(2)  # two members ended early and are stored
    clock.tick(5.0)
    clock.tick(1.0)
    update(3001, 3001)  # this interval held 5 s of writing: not counted
    update.writing(98)
    clock.tick(40.0)
    update.ended([("completed", 3000)] * 98 + [("diverged", 1500)] * 2, 3001)
    assert "pack 1/1 (100 points): writing results of 2 runs…" in progress.lines
    assert "pack 1/1 (100 points): writing results of 98 runs…" in progress.lines
    assert progress.lines[-1] == (
        "pack 1/1 (100 points): 98 completed at step 3000, 2 diverged at step 1500, 1,000 steps/s; "
        "results of 98 runs written in 40.0 s"
    )
    assert progress.lines[0] == "sweep: 100 points, 0 stored, 100 to run in 1 packs"


def test_one_callback_serves_runs_in_turn() -> None:
    """Points of a pack resumed from different checkpoints run as separate groups through one callback:
    each group's rate and first chunk are its own."""
    clock = FakeClock()
    progress = Recorder("gd", clock)
    progress.planned(2, 0, [2])
    update = progress.pack(0, ["a", "b"])
    clock.tick(2.0)
    update(1000, 2001)
    clock.tick(1.0)
    update(2001, 2001)
    update.ended([("completed", 2000)] * 2, 2001)
    clock.tick(4.0)
    update(1800, 2001)  # resumed at 800 steps: a first chunk again
    update.ended([("completed", 2000)] * 2, 2001)
    assert progress.lines[-2] == (
        "pack 1/1 (2 points): step 1800/2001, first chunk 4.0 s (incl. compilation); points 0/2"
    )


def test_the_bar_shows_the_write_phase() -> None:
    """On a terminal the pack's bar says ``writing results of N runs…`` and is removed at the end."""
    clock = FakeClock()
    with SweepProgress("gd", clock=clock, bar=True) as progress:
        update = progress.pack(0, ["gd"])
        clock.tick(1.0)
        update(10, 21)
        clock.tick(1.0)
        update(21, 21)
        task = progress.bar.tasks[0]
        assert task.fields["rate"] == "11 steps/s" and task.fields["eta"] == "ETA 0 s"
        update.writing(1)
        assert progress.bar.tasks[0].description == "gd: writing results of 1 run…"
        update.ended([("completed", 20)], 21)
        assert progress.bar.tasks == []


# ------------------------------------------------------------------------------- what the engine reports


class Calls:
    """A progress callback that records every call, including the optional ``writing`` and ``ended``."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append(("chunk", done, total))

    def writing(self, runs: int) -> None:
        self.calls.append(("writing", runs))

    def ended(self, ends: list[tuple[str, int]], total: int) -> None:
        self.calls.append(("ended", ends, total))


STOPS = """
name: stops
problem: {kind: toy, params: {w: 1.0}, objective: 0.5 * w**2}
constants: {lr: 0.1}
optimizer: {kind: gd, lr: lr}
train: {steps: 1000, stop: [{loss: {below: 1.0e-8}}]}
measure: [{kind: loss}]
runtime: {chunk: 40}
"""


def test_execute_reports_the_real_stop_and_the_write() -> None:
    """GD on ½w² with η = 0.1 stops at step 85 (``test_engine``): the end is reported as step 85, never
    as the planned 1001 steps, and ``writing`` comes before ``on_done`` stores the run."""
    calls, stored = Calls(), []
    spec = load("s.yaml", text=STOPS).spec
    out = execute(spec, progress=calls, on_done=lambda ended: stored.append((ended[0][0], calls.calls[-1])))
    assert out.status == "stopped" and out.end_step == 85
    assert calls.calls[:3] == [("chunk", 40, 1001), ("chunk", 80, 1001), ("chunk", 86, 1001)]
    assert calls.calls[3:] == [("writing", 1), ("ended", [("stopped", 85)], 1001)]
    assert stored == [(0, ("writing", 1))]


def test_execute_pack_reports_members_ending_apart() -> None:
    """Members that stop at different steps are stored as they end, each write announced first; the end
    lists every member's own stop."""
    points = load("s.yaml", text=STOPS, multirun=["constants.lr=0.1,0.5"]).points
    specs = [p.spec for p in points]
    calls, order = Calls(), []
    hosts = [prepare(s) for s in specs]
    outs = execute_pack(
        specs, hosts, calls, on_done=lambda ended: order.extend((i, calls.calls[-1]) for i, _ in ended)
    )
    ends = [(o.status, o.end_step) for o in outs]
    assert ends[1][1] < ends[0][1] == 85
    phases = [c for c in calls.calls if c[0] != "chunk"]
    assert phases == [("writing", 1), ("writing", 1), ("ended", ends, 1001)]
    assert [i for i, _ in order] == [1, 0] and all(c == ("writing", 1) for _, c in order)
    assert all(c[1] < 1001 for c in calls.calls if c[0] == "chunk")


def test_plain_callbacks_still_work() -> None:
    """A plain ``(done, total)`` function is called per chunk and nothing else."""
    seen: list[tuple[int, int]] = []
    execute(load("s.yaml", text=STOPS).spec, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(40, 1001), (80, 1001), (86, 1001)]


def test_no_write_announced_for_nothing() -> None:
    """A chunk in which no member ended writes nothing and says nothing."""
    progress = Recorder()
    report_writing(progress.pack(0, ["gd"]), 0)
    assert progress.lines == []
