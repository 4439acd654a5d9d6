"""Fuzzing the spec loader: hostile or broken specs give located errors, never tracebacks.

Every spec in ``specs/`` and ``tests/bad_specs/`` is mutated with a seeded generator — keys deleted,
duplicated, renamed or swapped; values replaced by other types, huge numbers, NaN/inf, deep nesting,
control characters, long strings or hostile expressions; alias bombs inserted; the text truncated or
sprinkled with odd characters — and each mutant is loaded through :func:`eosdsl.spec.load.load`, the
path ``eosdsl validate`` takes. Every mutant must be accepted or rejected with a :class:`SpecError`
whose every error is located (a line or a key path), within a time and memory bound. The default run
tries :data:`DEFAULT_MUTANTS` mutants; the ``slow`` run many more. Run this module alone with ``-s`` to
see the figures (mutants tried / rejected with location / accepted / tracebacks).
"""

from __future__ import annotations

import io
import random
import resource
import string
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import spec_text
from ruamel.yaml import YAML

from eosdsl.spec.errors import MAX_REPORTED, SpecError
from eosdsl.spec.load import load
from eosdsl.spec.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "specs").rglob("*.yaml")) + sorted((ROOT / "tests" / "bad_specs").glob("*.yaml"))

DEFAULT_MUTANTS = 500
SLOW_MUTANTS = 2000
TIME_LIMIT_S = 10.0
"""Most seconds one mutant may take to load."""
MEMORY_LIMIT_MB = 300
"""Most the peak resident memory may grow while loading one mutant."""

# ------------------------------------------------------------------------------------------- mutations

HOSTILE_EXPRESSIONS = [
    "2**10000",
    "1//0",
    "1%0",
    "1/0",
    "0**-1",
    "(1)",
    "-inf",
    "1e400",
    "nan",
    "eps[0]",
    "eps[0:5]",
    "__import__('os').system('true')",
    "(" * 300 + "1" + ")" * 300,
    "not " * 400 + "1",
    "-" * 1000 + "1",
    "1 + " * 600 + "1",
    "x" * 3000,
    "sum(" * 100 + "1" + ")" * 100,
    "lambda: 1",
    "\x1b[2J",
]


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _hostile_value(rng: random.Random) -> Any:
    """A value of another type, a huge or non-finite number, deep nesting, odd text, an expression."""
    choices: list[Any] = [
        None,
        True,
        0,
        -1,
        1.5,
        "text",
        [],
        {},
        [1, "a", None],
        {"kind": "nope"},
        10**30,
        2**64,
        -(2**63) - 1,
        1e308,
        float("inf"),
        float("-inf"),
        float("nan"),
        _deep(rng.choice([20, 60, 300])),
        "\x1b[2J\x1b]0;pwned\x07",
        "a\u202eb\u200bc",
        "\x00\x01\x7f\x85",
        "y" * rng.choice([100, 10_000]),
        list(range(rng.choice([50, 2000]))),
        {f"k{i}": i for i in range(rng.choice([10, 1000]))},
        rng.choice(HOSTILE_EXPRESSIONS),
        rng.choice(HOSTILE_EXPRESSIONS),
    ]
    return rng.choice(choices)


def _containers(node: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every mapping and list in ``node`` with its path (the root included)."""
    found = [(path, node)] if isinstance(node, dict | list) else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found += _containers(child, (*path, key))
    return found


def _misspell(word: str, rng: random.Random) -> str:
    if len(word) < 2:
        return word + "x"
    i = rng.randrange(len(word) - 1)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # two letters swapped
    return word[:i] + word[i + 1 :]  # one letter dropped


def _mutate_data(data: Any, rng: random.Random) -> Any:
    """One structural mutation of the plain data (in place where possible); returns the new root."""
    containers = _containers(data)
    if not containers:
        return _hostile_value(rng)
    _, node = rng.choice(containers)
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    op = rng.choice(["delete", "replace", "replace", "replace", "rename", "swap", "grow", "wrap"])
    if not keys or op == "grow":
        if isinstance(node, dict):
            key = _misspell(rng.choice(["kind", "lr", "steps", "name", "every", "x"]), rng)
            node[key] = _hostile_value(rng)
        else:
            node.extend([_hostile_value(rng)] * rng.choice([1, 3, 50]))
        return data
    key = rng.choice(keys)
    if op == "delete":
        del node[key]
    elif op == "replace":
        node[key] = _hostile_value(rng)
    elif op == "rename" and isinstance(node, dict) and isinstance(key, str):
        node[_misspell(key, rng)] = node.pop(key)
    elif op == "swap" and len(keys) > 1:
        other = rng.choice(keys)
        node[key], node[other] = node[other], node[key]
    elif op == "wrap":
        node[key] = rng.choice([[node[key]], {"kind": node[key]}, str(node[key])])
    else:
        node[key] = _hostile_value(rng)
    return data


def _dump(data: Any) -> str:
    """The mutant as YAML text. The pure-Python emitter recurses ~3 frames per nesting level, so a
    depth-300 hostile value inside a spec exceeds Python's default limit at pytest's stack depth: the
    limit is raised for the dump only (the loader under test still parses the text at the default one)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.width = 4096
    stream = io.StringIO()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        yaml.dump(data, stream)
    finally:
        sys.setrecursionlimit(limit)
    return stream.getvalue()


ALIAS_BOMB = "a0: &a0 [x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10)
)


JUNK = [
    *("\t", "\x00", "\x85", "\ufeff", "\x1b[2J", ": ", "- ", "{", "]", "&a", "*b"),
    *("!!python/object:os.system", "%YAML 1.1\n", "---\n", '"', "'", "\\", "#"),
]
TAGGED = [
    *("!!float nan-ish", "!!int 1.5", "!!bool 2", "!!null x", "!!binary ???", "!!timestamp never"),
    *("!!set [1]", "!!map [1]", "!!omap {a: 1}", "!foo bar", "!!python/name:os.system ''"),
]


def _mutate_text(text: str, rng: random.Random) -> str:
    """One mutation of the YAML text itself."""
    op = rng.choice(["truncate", "insert", "duplicate_line", "alias_bomb", "deep", "tag", "delete_line"])
    lines = text.splitlines(keepends=True) or [""]
    if op == "truncate":
        return text[: rng.randrange(len(text) + 1)]
    if op == "insert":
        junk = rng.choice(JUNK)
        at = rng.randrange(len(text) + 1)
        return text[:at] + junk + text[at:]
    if op == "duplicate_line":
        i = rng.randrange(len(lines))
        return "".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])
    if op == "delete_line":
        i = rng.randrange(len(lines))
        return "".join(lines[:i] + lines[i + 1 :])
    if op == "alias_bomb":
        if rng.random() < 0.5:
            return ALIAS_BOMB + text
        return text + "\ntags: *a9\n" + ALIAS_BOMB.replace("a", "t")
    if op == "deep":
        depth = rng.choice([30, 41, 300, 5000])
        return text + "\ntags: " + "[" * depth + "]" * depth + "\n"
    return text + f"\nseed: {rng.choice(TAGGED)}\n"


def mutant(source: Path, rng: random.Random) -> str:
    """A seeded mutant of one source spec: 1–3 structural or text mutations."""
    text = source.read_text(encoding="utf-8")
    for _ in range(rng.choice([1, 1, 2, 3])):
        if rng.random() < 0.65:
            try:
                data, _ = load_yaml(text, str(source))
            except SpecError:
                text = _mutate_text(text, rng)
                continue
            text = _dump(_mutate_data(data, rng))
        else:
            text = _mutate_text(text, rng)
    return text


# ------------------------------------------------------------------------------------------- checking


@dataclass
class Figures:
    """What a fuzz run found."""

    tried: int = 0
    rejected_located: int = 0
    accepted: int = 0
    tracebacks: list[str] = field(default_factory=list)
    unlocated: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)
    messages: Counter = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"mutants tried {self.tried} / rejected with location {self.rejected_located} / accepted "
            f"{self.accepted} / tracebacks {len(self.tracebacks)} / unlocated {len(self.unlocated)} / "
            f"over the time or memory bound {len(self.slow)}"
        )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_one(name: str, text: str, figures: Figures) -> None:
    """Load ``text`` as the spec ``name`` and record the outcome in ``figures``."""
    figures.tried += 1
    before, start = _peak_mb(), time.perf_counter()
    try:
        load(name, text=text)
    except SpecError as error:
        rendered = str(error)
        located = all(e.line is not None or e.path for e in error.errors)
        bounded = len(rendered.splitlines()) <= MAX_REPORTED + 1 and all(
            len(line) <= 2000 for line in rendered.splitlines()
        )
        if located and bounded and error.errors:
            figures.rejected_located += 1
            figures.messages[error.sorted_errors()[0].message[:40]] += 1
        else:
            figures.unlocated.append(f"{name}: {rendered[:300]!r}\n--- spec ---\n{text[:1500]}")
    except Exception:  # noqa: BLE001 - the point of the test: anything else is a traceback
        figures.tracebacks.append(f"{name}:\n{traceback.format_exc()[-2000:]}\n--- spec ---\n{text[:1500]}")
    else:
        figures.accepted += 1
    elapsed, grown = time.perf_counter() - start, _peak_mb() - before
    if elapsed > TIME_LIMIT_S or grown > MEMORY_LIMIT_MB:
        figures.slow.append(f"{name}: {elapsed:.1f} s, +{grown:.0f} MB\n--- spec ---\n{text[:500]}")


def fuzz(count: int, seed: int) -> Figures:
    rng = random.Random(seed)
    figures = Figures()
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        check_one(f"{source.name}#{i}", mutant(source, rng), figures)
    return figures


def _assert_clean(figures: Figures) -> None:
    print("\n" + figures.line())
    assert not figures.tracebacks, figures.tracebacks[0]
    assert not figures.unlocated, figures.unlocated[0]
    assert not figures.slow, figures.slow[0]


# ------------------------------------------------------------------------------------------- fixed cases

_BASE = spec_text("relu_scalar_min")
_TOY = (
    "name: x\nproblem: {kind: toy, params: {u: 1.0}, objective: 'u**2'}\noptimizer: {kind: gd, lr: 0.02}\n"
    "train: {steps: 10}\n"
)

_SUPERVISED = spec_text("supervised_min")

FIXED = {
    "alias bomb": ALIAS_BOMB + _BASE,
    "alias bomb used": ALIAS_BOMB + _BASE + "tags: *a9\n",
    "200k-item list": _BASE + "tags: [" + ", ".join(["x"] * 200_000) + "]\n",
    "20k unknown keys": _BASE + "".join(f"k{i}: 1\n" for i in range(20_000)),
    "3000 unknown keys": _BASE + "".join(f"k{i}: 1\n" for i in range(3000)),
    "deep flow nesting": _BASE + "tags: " + "[" * 300 + "]" * 300 + "\n",
    "deep block nesting": _BASE + "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "x\n",
    "nan-ish float tag": _BASE.replace("lr: 0.02", "lr: !!float nan-ish"),
    "do: null": _BASE + "events:\n  - when: {step: {at: 1}}\n    do: null\n",
    "do: list": _BASE + "events:\n  - when: {step: {at: 1}}\n    do: [1]\n",
    "inf constant": _BASE + "constants: {eps: .inf}\n",
    "nan lr": _BASE.replace("lr: 0.02", "lr: .nan"),
    "1e400 string": _BASE.replace("lr: 0.02", 'lr: "1e400"'),
    "1e400 number": _BASE.replace("lr: 0.02", "lr: 1e400"),
    "-inf schedule bound": _BASE.replace(
        "lr: 0.02", "lr: {kind: linear_warmup, start: -inf, end: 0.1, steps: 10}"
    ),
    "huge n_test": _SUPERVISED.replace("n: 8}", "n: 8, n_test: 18446744073709551616}"),
    "misspelled pipeline step": _SUPERVISED.replace("[scale]", "[stakndardize]"),
    "misspelled pipeline argument": _SUPERVISED.replace("[scale]", "[{standardize: {mod: global}}]"),
    "objective 2**10000": _TOY.replace("'u**2'", "'2**10000'"),
    "lr 2**10000": _BASE.replace("lr: 0.02", 'lr: "2**10000"'),
    "lr 1//0": _BASE.replace("lr: 0.02", 'lr: "1//0"'),
    "lr 1%0": _BASE.replace("lr: 0.02", 'lr: "1%0"'),
    "slice of a scalar": _BASE.replace("lr: 0.02", 'lr: "eps[0]"') + "constants: {eps: 0.1}\n",
    "index of a scalar parameter": _TOY.replace("'u**2'", "'u[0]**2'"),
    "index out of range": _TOY.replace("{u: 1.0}", "{u: [1.0, 2.0]}").replace("'u**2'", "'u[0:1] + u[2]'"),
    "control characters": _BASE.replace("name: x", 'name: "\\x1b[2J\\x1b]0;t\\x07"') + "k\x1b: 1\n",
    "huge sweep": _BASE + "constants: {a: 1.0, b: 1.0}\nsweep:\n  grid:\n"
    + "".join(f"    constants.{k}: [{', '.join(str(i) for i in range(200))}]\n" for k in "ab"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_hostile_cases_are_located_errors(name):
    figures = Figures()
    check_one(name, FIXED[name], figures)
    assert not figures.tracebacks, figures.tracebacks[0]
    assert not figures.unlocated, figures.unlocated[0]
    assert not figures.slow, figures.slow[0]
    assert figures.rejected_located == 1, f"{name} was accepted"


def test_objective_one_is_a_float_objective():
    """An integer-valued objective `(1)` is the constant 1.0 (differentiable), so it validates."""
    assert load("toy", text=_TOY.replace("'u**2'", "'(1)'")).spec.problem.objective == "(1)"
    assert load("base", text=_BASE) and load("toy", text=_TOY) and load("supervised", text=_SUPERVISED)


@pytest.mark.slow  # ~30 s: 500 mutants, each loaded and validated
def test_fuzz_mutants_give_located_errors():
    _assert_clean(fuzz(DEFAULT_MUTANTS, seed=13))


@pytest.mark.slow
def test_fuzz_many_mutants():
    _assert_clean(fuzz(SLOW_MUTANTS, seed=1313))


def test_sources_cover_the_library():
    assert len(SOURCES) >= 10 and all(p.suffix == ".yaml" for p in SOURCES)
    assert set(string.ascii_lowercase) & {p.name[0] for p in SOURCES}
