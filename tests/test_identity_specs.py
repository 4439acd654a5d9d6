"""Identity of real specs: golden ids of library specs, invariances of the YAML text, and sensitivity.

The id of a spec is ``spec_id(loaded.spec.model_dump(mode="json"))``: the hash of the *validated* spec
with every default filled, minus the top-level ``NON_SEMANTIC_KEYS``. So how a spec is written (key
order, comments, flow or block style, ``1e-3`` or ``0.001``, ``10`` or ``10.0`` for a float, defaults
spelled out or not) must not matter, and every semantic leaf must.

``tests/test_registry_identity.py`` pins the encoding on hand-written dicts; this file pins it on specs
that went through the loader.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from eosdsl.data.preprocess import STEPS
from eosdsl.engine.execute import prepare
from eosdsl.registry import identity
from eosdsl.registry.identity import NON_SEMANTIC_KEYS, numerics_environment, run_key, spec_id
from eosdsl.spec import models as m
from eosdsl.spec.load import load
from eosdsl.spec.semantic import semantic_errors

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

LeafPath = tuple[str | int, ...]


def id_of(spec: m.Spec) -> str:
    """The id of a validated spec, exactly as ``eosdsl.orchestration.run_one`` computes it."""
    return spec_id(spec.model_dump(mode="json"))


def text_id(text: str) -> str:
    """The id of a spec given as YAML text."""
    return id_of(load("x.yaml", text=text).spec)


# ------------------------------------------------------------------------------------------ golden

# GOLDEN spec ids of library specs. These hex strings are the ids under which runs of these specs are
# stored in every registry. If one of these tests fails:
#   * because the library spec itself was edited on purpose: that is a new experiment; update its pin
#     (its old stored runs stay under the old id);
#   * WITHOUT an edit to the spec (a changed canonical encoding, default value, new defaulted field,
#     field rename or type change in eosdsl.spec.models, ...): every stored id changes with it. Such a
#     change must go together with a version bump of the prefixes (and, when numbers change,
#     SEMANTICS_VERSION) in eosdsl/registry/identity.py and a note in the changelog/docs saying that
#     existing registries are orphaned. Never "fix" these tests by just pasting the new ids.
#     (Before the first release, docs/CHANGELOG.md's "Unreleased" entry stands in for the bump.)
GOLDEN_SPEC_IDS = {
    ("examples/quickstart.yaml", None): "e3f8dfc94458e3d0cb3aea3047b83d34395fd6da0cf2b02a520a1a6e50e1739f",
    (
        "phb-catapults/relu-scalar-four-scenarios.yaml",
        None,
    ): "f7324b412b5d0f03811a30156387018955d7133a5b25afe2762de89a38c9634a",
    (
        "phb-catapults/relu-scalar-four-scenarios.yaml",
        "gd-to-phb",
    ): "116006f85bf02210d25f39f1edfaf12b9907e14fdf9d211a42ca568d7afa49e5",
    (
        "eigenvector-rotation/product-chain-fig1.yaml",
        None,
    ): "57b01e88f04a3bc96b79200c923466fada15e52f3915d23aee699dcc6191c5b9",
}


@pytest.mark.parametrize(
    ("relpath", "label"), list(GOLDEN_SPEC_IDS), ids=[f"{p}[{lbl}]" for p, lbl in GOLDEN_SPEC_IDS]
)
def test_library_spec_ids_are_pinned(relpath: str, label: str | None) -> None:
    """The base spec (``label=None``; its ``sweep`` included) or one sweep point has the pinned id.

    Only spec ids are pinned: run keys also hash the jax version, backend and device, so they differ
    between machines by design.
    """
    loaded = load(SPECS / relpath)
    if label is None:
        spec = loaded.spec
    else:
        (spec,) = [p.spec for p in loaded.points if p.label == label]
    assert id_of(spec) == GOLDEN_SPEC_IDS[(relpath, label)]


def test_pinned_ids_are_distinct_and_points_differ_from_their_base() -> None:
    assert len(set(GOLDEN_SPEC_IDS.values())) == len(GOLDEN_SPEC_IDS)
    loaded = load(SPECS / "phb-catapults" / "relu-scalar-four-scenarios.yaml")
    ids = [id_of(p.spec) for p in loaded.points]
    assert len(set(ids)) == len(ids) == 4
    assert id_of(loaded.spec) not in ids


# --------------------------------------------------------------------------------------- invariance

BASE = """\
name: invariance
description: heavy ball with a switch to GD
tags: [a, b]
constants:
  eps: 0.01
  u0: 10.0
problem:
  kind: relu_scalar
  u0: u0
  v0: 0.000001
optimizer:
  kind: heavy_ball
  lr:
    kind: linear_warmup
    start: 0.001
    end: (2 + eps) / u0**2
    steps: 50.0
  beta: 0.9
events:
  - name: to gd
    when:
      sharpness:
        crosses: below
    do:
      switch_optimizer:
        kind: gd
train:
  steps: 100
measure:
  - kind: loss
  - kind: mss
  - kind: sharpness
    every: 10
checks:
  - kind: final
    of: sharpness
    below: mss
    tol: 0.5
"""


def _edit(text: str, *replacements: tuple[str, str]) -> str:
    """``text`` with each ``(old, new)`` applied; every ``old`` must occur exactly once."""
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


INVARIANT_VARIANTS = {
    "keys shuffled": """\
train:
  steps: 100
checks:
  - tol: 0.5
    below: mss
    of: sharpness
    kind: final
optimizer:
  beta: 0.9
  lr:
    steps: 50.0
    end: (2 + eps) / u0**2
    start: 0.001
    kind: linear_warmup
  kind: heavy_ball
measure:
  - kind: loss
  - kind: mss
  - every: 10
    kind: sharpness
events:
  - do:
      switch_optimizer:
        kind: gd
    when:
      sharpness:
        crosses: below
    name: to gd
problem:
  v0: 0.000001
  u0: u0
  kind: relu_scalar
constants:
  u0: 10.0
  eps: 0.01
tags: [a, b]
description: heavy ball with a switch to GD
name: invariance
""",
    "comments": """\
# A header comment.
name: invariance   # trailing comment
description: heavy ball with a switch to GD
tags: [a, b]
constants:
  # how far above the MSS
  eps: 0.01
  u0: 10.0   # initial u
problem:
  kind: relu_scalar
  u0: u0
  v0: 0.000001
optimizer:
  kind: heavy_ball
  lr:
    kind: linear_warmup
    start: 0.001
    end: (2 + eps) / u0**2   # the target rate
    steps: 50.0
  beta: 0.9
events:
  # one switch
  - name: to gd
    when:
      sharpness:
        crosses: below
    do:
      switch_optimizer:
        kind: gd
train:
  steps: 100
measure:
  - kind: loss
  - kind: mss
  - kind: sharpness
    every: 10
checks:
  - kind: final
    of: sharpness
    below: mss
    tol: 0.5
# A footer comment.
""",
    "flow style": """\
{name: invariance, description: heavy ball with a switch to GD, tags: [a, b],
 constants: {eps: 0.01, u0: 10.0},
 problem: {kind: relu_scalar, u0: u0, v0: 0.000001},
 optimizer: {kind: heavy_ball, beta: 0.9,
             lr: {kind: linear_warmup, start: 0.001, end: (2 + eps) / u0**2, steps: 50.0}},
 events: [{name: to gd, when: {sharpness: {crosses: below}}, do: {switch_optimizer: {kind: gd}}}],
 train: {steps: 100},
 measure: [{kind: loss}, {kind: mss}, {kind: sharpness, every: 10}],
 checks: [{kind: final, of: sharpness, below: mss, tol: 0.5}]}
""",
    "exponent notation": _edit(
        BASE,
        ("start: 0.001", "start: 1e-3"),
        ("v0: 0.000001", "v0: 1.0e-6"),
        ("eps: 0.01", "eps: 1E-2"),
        ("tol: 0.5", "tol: 5.0e-1"),
    ),
    "other exponent spellings": _edit(
        BASE,
        ("start: 0.001", "start: 1.0e-3"),
        ("v0: 0.000001", "v0: 1e-06"),
        ("eps: 0.01", "eps: 0.1e-1"),
        ("beta: 0.9", "beta: 9e-1"),
    ),
    "ints for floats": _edit(
        BASE,
        ("u0: 10.0", "u0: 10"),
        ("steps: 50.0", "steps: 50"),
        ("tol: 0.5", "tol: 0.50"),
        ("  steps: 100\n", "  steps: 100.0\n"),  # and an integral float for an int field
    ),
    "defaults written out": _edit(
        BASE,
        ("constants:", "seed: 0\nprecision: float64\nconstants:"),
        ("  beta: 0.9\n", "  beta: 0.9\n  lr_convention: gd_equivalent\n  form: displacement\n"),
        ("        crosses: below\n", "        crosses: below\n        threshold: mss\n"),
        (
            "        kind: gd\n",
            # an lr-less switch target inherits the main schedule: writing it out changes nothing
            "        kind: gd\n"
            "        lr: {kind: linear_warmup, start: 0.001, end: (2 + eps) / u0**2, steps: 50.0}\n"
            "      freeze_schedule: false\n      stop: false\n",
        ),
        ("  steps: 100\n", "  steps: 100\n  stop: []\n"),
        ("  - kind: loss\n", "  - kind: loss\n    every: 1\n"),
        ("  - kind: mss\n", "  - kind: mss\n    every: 1\n"),
        ("    every: 10\n", "    every: 10\n    method: auto\n    k: 1\n    densify: null\n"),
        ("    tol: 0.5\n", "    tol: 0.5\n    above: null\n"),
    )
    + "sweep: null\n",
    "non-semantic fields changed": _edit(
        BASE,
        ("name: invariance", "name: renamed"),
        ("description: heavy ball with a switch to GD", "description: something else entirely"),
        ("tags: [a, b]", "tags: [c]"),
    )
    + "runtime: {chunk: 7, checkpoint_every: 11}\n",
    "non-semantic fields omitted": _edit(
        BASE, ("description: heavy ball with a switch to GD\n", ""), ("tags: [a, b]\n", "")
    ),
}


@pytest.mark.parametrize("variant", list(INVARIANT_VARIANTS))
def test_spec_id_ignores_how_the_spec_is_written(variant: str) -> None:
    text = INVARIANT_VARIANTS[variant]
    assert text != BASE
    assert text_id(text) == text_id(BASE)


def test_runtime_and_top_level_names_are_exactly_the_non_semantic_keys() -> None:
    assert {"name", "description", "tags", "runtime", "checks"} == NON_SEMANTIC_KEYS
    # A nested `name` (an event's) is semantic, unlike the top-level one.
    assert text_id(BASE.replace("name: to gd", "name: to GD")) != text_id(BASE)


# -------------------------------------------------------------------------------------- sensitivity

RICH = """\
name: rich
description: many leaves
tags: [x]
seed: 3
precision: float64
constants: {eps: 0.01, u0: 10.0, beta: 0.9, c: 2.0}
problem: {kind: relu_scalar, u0: u0, v0: 1.0e-6}
optimizer:
  kind: heavy_ball
  lr: {kind: linear_warmup, start: 1.0e-4, end: (2 + eps) / u0**2, steps: 50}
  beta: beta
  lr_convention: gd_equivalent
  form: displacement
events:
  - name: to gd
    when: {sharpness: {crosses: below, threshold: mss}}
    do: {switch_optimizer: {kind: gd}, freeze_schedule: true}
  - name: halt
    when: {expr: u < 1}
    do: {stop: true}
train:
  steps: 400
  stop:
    - {loss: {below: 1.0e-30}}
    - {step: {at: 390}}
measure:
  - {kind: loss}
  - {kind: params, every: 2}
  - {kind: lr, every: 3}
  - {kind: mss, every: 4}
  - {kind: grad_norm, every: 5}
  - {kind: sharpness, every: 10}
  - {kind: derived, name: ratio, expr: sharpness / mss}
checks:
  - {kind: final, of: sharpness, below: mss, above: 0.5 * mss, tol: 0.001}
  - {kind: inequality, lhs: sharpness, op: "<=", rhs: c * mss, tol: 0.01, steps: [10, 300]}
  - {kind: monotone, of: u, direction: nonincreasing, tol: 1.0e-9}
  - {kind: lemma6, tol: 1.0e-12}
  - {kind: theorem2, tol: 0.0}
runtime: {chunk: 100, checkpoint_every: 200}
"""

TOY = """\
name: toy
precision: float32
constants: {a: 1.5}
problem:
  kind: toy
  params: {w: [1.0, 2.0], b: a}
  objective: 0.5 * k * sum(w**2) * q
  coefficients: {k: 2.0}
  definitions: {q: b**2}
optimizer:
  kind: adam
  lr: {kind: piecewise, boundaries: [10, 20], values: [0.1, 0.01, 0.001]}
  b1: 0.8
events:
  - when: {loss: {below: 1.0e-3}}
    do:
      switch_optimizer:
        kind: nesterov
        lr: {kind: cosine, peak: 0.1, decay_steps: 30, end: 0.0, warmup_steps: 5}
        beta: 0.5
        lr_convention: raw
  - when: {step: {at: 25}}
    do: {switch_optimizer: {kind: rmsprop, lr: 0.01, decay: 0.9, eps: 1.0e-7}}
train: {steps: 40}
measure:
  - {kind: loss}
  - {kind: grad_norm, every: 4}
checks:
  - {kind: ordering, of: loss, order: increasing, over: [slow, fast]}
sweep:
  grid: {seed: [0, 1]}
  cases:
    - {label: slow, set: {optimizer.b1: 0.9}}
    - {label: fast}
"""

LDN_PHB = ("phb-catapults/ldn-warmup-gd-vs-phb.yaml", "phb")

LIBRARY = sorted(str(p.relative_to(SPECS)) for p in SPECS.rglob("*.yaml"))


def _representative_points(points: list[Any]) -> list[Any]:
    """The first and the last point of each case (of the whole sweep without cases), in sweep order."""
    by_case: dict[str | None, list[Any]] = {}
    for point in points:
        by_case.setdefault(point.case, []).append(point)
    chosen = [p for group in by_case.values() for p in (group[0], group[-1])]
    return list({id(p): p for p in chosen}.values())


def _sensitivity_specs() -> dict[str, m.Spec]:
    """The specs whose every leaf is perturbed: two hand-written ones, and every library spec with a
    few representative points of its sweep (the first and the last point of each case).

    Points of a sweep differ from each other only in their swept values (which the golden-id test
    ``test_pinned_ids_are_distinct_and_points_differ_from_their_base`` covers); their leaves are the
    same ones, so walking all of them would add a slow test per point of a 100-point grid
    (``specs/phb-catapults/relu-scalar-beta-sweep.yaml``) and find nothing new.
    """
    specs = {"rich": load("rich.yaml", text=RICH).spec, "toy": load("toy.yaml", text=TOY).spec}
    for relpath in LIBRARY:
        loaded = load(SPECS / relpath)
        specs[relpath] = loaded.spec
        for point in _representative_points([p for p in loaded.points if p.label is not None]):
            specs[f"{relpath}[{point.label}]"] = point.spec
    return specs


SENSITIVITY_SPECS = _sensitivity_specs()


def _literal_values(schema: Any, out: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Every string a ``Literal`` field of that name may take, anywhere in the JSON schema."""
    out = {} if out is None else out
    if isinstance(schema, dict):
        for name, prop in (schema.get("properties") or {}).items():
            options = [prop, *prop.get("anyOf", []), *prop.get("oneOf", [])]
            for option in options:
                values = option.get("enum", []) + ([option["const"]] if "const" in option else [])
                out.setdefault(name, set()).update(v for v in values if isinstance(v, str))
        for value in schema.values():
            _literal_values(value, out)
    elif isinstance(schema, list):
        for value in schema:
            _literal_values(value, out)
    return out


LITERALS = _literal_values(m.Spec.model_json_schema())
# Free-text network fields whose valid values the schema cannot list.
LITERALS["activation"] = {"relu", "tanh", "elu", "gelu", "softplus", "swish", "identity", "cubic"}
LITERALS["init"] = {"torch_default", "lecun", "he"}
LITERALS["pipeline"] = set(STEPS)  # a pipeline step given by name must name a step

# Replacements for empty containers, by field name (each is a valid non-empty value).
EMPTY_REPLACEMENTS: dict[str, list[Any]] = {
    "stop": [[{"step": {"at": 1}}]],
    "events": [
        [{"when": {"step": {"at": 1}}, "do": {"stop": True}}],
        [{"when": {"step": {"at": 1}}, "do": {"freeze_schedule": True}}],  # where stops are refused
    ],
    "checks": [[{"kind": "final", "of": "loss", "below": 1.0}]],
    "constants": [{"c0": 1.0}],
    "coefficients": [{"c0": 1.0}],
    "definitions": [{"d0": "1.0"}],
    "grid": [{"seed": [0, 1]}],
    "cases": [[{"label": "c0"}]],
    "set": [{"seed": 7}],
    "pipeline": [["flatten"]],
    "dense": [[16]],
    "within": [{"constants.c0": [0.0, 1.0]}],
}

# Replacements tried for a null leaf: a number (bounds, tolerances), a string (an event's name), a step
# window, an optimizer (switch_optimizer), an empty mapping (sweep) and a densify rule; 8 and 10⁴ for
# integer options bounded below by another field (a solver block ≥ k, a window's stop ≥ start).
NULL_REPLACEMENTS: list[Any] = [
    1.0,
    8,
    10_000,
    "x",
    [0, 1],
    {"kind": "gd", "lr": 0.1},
    {},
    {"above": 1.9},
] + [[1.0] * k for k in range(2, 7)]


def _leaves(obj: Any, path: LeafPath = ()) -> Iterator[tuple[LeafPath, Any]]:
    """Every scalar leaf and every empty container of a JSON document, with its path."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(obj, list) and obj:
        for i, value in enumerate(obj):
            yield from _leaves(value, (*path, i))
    else:
        yield path, obj


def _candidates(path: LeafPath, value: Any) -> list[Any]:
    """Other values for a leaf, most natural first; the first that validates is used."""
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):  # keep ints int
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value * 1.5 if value else 1.0, value + 1.0]
    if isinstance(value, str):
        field = path[-1] if isinstance(path[-1], str) else "pipeline" if path[-2:-1] == ("pipeline",) else ""
        if isinstance(path[-1], int) and path[-2:-1] in (("activation",), ("init",)):
            field = path[-2]  # one entry of a per-layer list (an MLP's activations or init schemes)
        alternatives = sorted(LITERALS.get(field, set()) - {value})
        return [*alternatives, f"({value}) * 1.5", f"{value}_x"]
    if value is None:
        return list(NULL_REPLACEMENTS)
    return copy.deepcopy(EMPTY_REPLACEMENTS.get(key, []))


def _set(doc: Any, path: LeafPath, value: Any) -> None:
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = value


def _valid(document: dict[str, Any]) -> m.Spec | None:
    """The spec if ``document`` passes pydantic validation and the semantic checks, else None."""
    try:
        spec = m.Spec.model_validate(document)
    except ValidationError:
        return None
    return None if semantic_errors(spec) else spec


def _perturbations(spec: m.Spec) -> Iterator[tuple[LeafPath, Any, m.Spec | None]]:
    """For every semantic leaf and every check leaf (checks are judgements, so their perturbation must
    leave the id alone): (path, new value, re-validated spec), or a None spec if no alternative value is
    valid."""
    document = spec.model_dump(mode="json")
    for path, value in _leaves(document):
        if path[0] in NON_SEMANTIC_KEYS - {"checks"}:
            continue
        for candidate in _candidates(path, value):
            changed = copy.deepcopy(document)
            _set(changed, path, candidate)
            perturbed = _valid(changed)
            if perturbed is not None:
                yield path, candidate, perturbed
                break
        else:
            yield path, value, None


TRIGGER_FIELDS = frozenset({"sharpness", "loss", "accuracy", "step", "expr"})


def _reads_sharpness(spec: m.Spec) -> bool:
    return isinstance(spec.optimizer.lr, m.Measured) and "sharpness" in spec.optimizer.lr.value


def _skip_reason(path: LeafPath, value: Any, spec: m.Spec) -> str | None:
    """Why a leaf may have no other valid value (None: it should have one)."""
    field = path[-1]
    sharpness_start = path[0] == "measure" and field == "start" and spec.measure[path[1]].kind == "sharpness"
    if _reads_sharpness(spec) and (path == ("train", "stop") or field == "densify" or sharpness_start):
        return "a rate that reads the sharpness refuses stop rules, a late sharpness start and densify"
    trigger = len(path) >= 2 and (path[-2] == "when" or path[:2] == ("train", "stop"))
    if trigger and field in TRIGGER_FIELDS and value is None:
        return "a trigger holds exactly one of sharpness/loss/step/expr"
    if field == "method" and LITERALS["method"] == {value}:
        return "`method` has a single allowed value"
    if field == "stop" and path[-2] == "do" and value is True:
        return "an action needs at least one of switch_optimizer/freeze_schedule/stop"
    if field == "norm" and value == "ghost":
        return "the other norms reject the ghost_size that ghost norm requires"
    if field in ("norm_layers", "ghost_size") and value is None:
        return "only meaningful with batch/ghost norm, which this network does not use"
    if field == "batch_chunk" and value is None:
        return "chunking the batch is refused for batch/ghost norm, whose statistics span the batch"
    if field == "at" and value is None:
        return "a fixed baseline step is only valid with `baseline: step`"
    if path[0] == "measure" and field == "k" and value == 1:
        return "a rotation's k is at most the sharpness measure's k, which is 1 here (and k ≥ 1)"
    if path[0] == "measure" and field == "name":
        return "checks or expressions refer to this series by name"
    if field in ("kind", "source"):
        return "no other kind takes this model's fields, or other parts of the spec refer to it"
    if path[0] == "start" and field in ("stage", "at"):
        return "`start` names the spec's one stage; `final` is the one state a run starts from"
    if path[0] == "start" and field in ("spec", "event"):
        return "`start` names the one upstream spec file, and `at.event` one of its events"
    if path[0] == "checks":
        return "a check (a judgement, not identity) whose expression admits no blind substitute"
    if path[0] == "measure" and field == "every" and value == 1:
        return "a claim across steps needs this series at every step"
    if path[0] == "measure" and field == "params" and value is True:
        return "a check reads the series this flag stores (a flow_projection's theta_star.params)"
    if path[0] == "measure" and ((field == "min" and value is True) or path[-2] == "blocks"):
        return "a check reads the series this stores (gram_sharpness's gram_min, gram_block.<group>)"
    recursion = path[0] == "measure" and getattr(spec.measure[path[1]], "recursion", False)
    if recursion and field in ("recursion", "densify"):
        return "checks read gram_sharpness's recursion series, which advance at every step (no densify)"
    dopri5 = path[0] == "optimizer" and getattr(spec.optimizer, "method", None) == "dopri5"
    if dopri5 and field in ("method", "substeps"):
        return "dopri5 chooses its sub-steps (substeps stays 1), and rk4/euler refuse its rtol and ode_steps"
    if path[:2] == ("sweep", "checks") and field == "min_fraction" and value == 1:
        return "a fraction of grid points is at most 1"
    if path[:2] == ("sweep", "checks") and field in ("relative_to", "above", "below") and value is None:
        return "a sweep claim's relative_to needs a case; a first claim takes one of below/above"
    return None


def _walk(spec: m.Spec) -> tuple[list[LeafPath], list[LeafPath], int]:
    """(leaves whose perturbation did the wrong thing to the id, leaves skipped without a reason,
    perturbed count). A semantic leaf must change the id; a leaf of a non-semantic section (``checks``:
    judgements, stored as verdicts) must leave it alone."""
    base = id_of(spec)
    wrong, unexpected_skips, changed = [], [], 0
    for path, value, perturbed in _perturbations(spec):
        if perturbed is None:
            if _skip_reason(path, value, spec) is None:
                unexpected_skips.append(path)
            continue
        changed += 1
        if (id_of(perturbed) == base) != (path[0] in NON_SEMANTIC_KEYS):
            wrong.append(path)
    return wrong, unexpected_skips, changed


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SENSITIVITY_SPECS))
def test_every_semantic_leaf_changes_the_spec_id(name: str) -> None:
    """Perturb each leaf (numbers +1 or x1.5, strings to another literal or expression, booleans
    flipped, nulls and empty containers filled) to another valid value: the id must change, except
    for the leaves of ``checks``, which must leave it alone."""
    unchanged, unexpected_skips, changed = _walk(SENSITIVITY_SPECS[name])
    assert unchanged == [], f"semantic leaves that keep, or check leaves that change, the id: {unchanged}"
    assert unexpected_skips == [], f"no valid alternative value found for {unexpected_skips}"
    assert changed >= 20


def test_the_walk_would_catch_an_ignored_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Self-test of the harness: were ``seed`` dropped from the hash, the walk would report it."""
    monkeypatch.setattr(identity, "NON_SEMANTIC_KEYS", NON_SEMANTIC_KEYS | {"seed"})
    unchanged, _, _ = _walk(SENSITIVITY_SPECS["rich"])
    assert unchanged == [("seed",)]


def test_rich_spec_covers_every_part_and_documents_its_skips() -> None:
    """The rich spec reaches every section, and exactly these leaves have no valid alternative."""
    spec = SENSITIVITY_SPECS["rich"]
    perturbations = list(_perturbations(spec))
    sections = {path[0] for path, _, _ in perturbations}
    assert sections == {
        "seed",
        "precision",
        "constants",
        "problem",
        "optimizer",
        "events",
        "train",
        "measure",
        "checks",
        "sweep",
    }
    skipped = [".".join(map(str, path)) for path, _, new in perturbations if new is None]
    assert skipped == [
        "problem.kind",  # ldn_point also has u0/v0, but the lemma6/theorem2 checks need relu_scalar
        "optimizer.kind",  # heavy_ball with `form` fits no other optimizer
        "optimizer.lr.kind",  # linear_warmup's start/end/steps fit no other schedule
        "events.0.when.loss",  # trigger siblings: a trigger holds exactly one condition
        "events.0.when.accuracy",
        "events.0.when.step",
        "events.0.when.expr",
        "events.0.do.switch_optimizer.lr.kind",  # the inherited linear_warmup, as above
        "events.1.when.sharpness",
        "events.1.when.loss",
        "events.1.when.accuracy",
        "events.1.when.step",
        "events.1.do.stop",  # the event's only action
        "train.stop.0.sharpness",
        "train.stop.0.accuracy",
        "train.stop.0.step",
        "train.stop.0.expr",
        "train.stop.1.sharpness",
        "train.stop.1.loss",
        "train.stop.1.accuracy",
        "train.stop.1.expr",
        "measure.1.kind",  # params: the monotone check reads `u`
        "measure.3.kind",  # mss: the checks read `mss`
        "measure.5.kind",  # sharpness has `method`, which no other measure has
        "measure.6.kind",  # derived: name/expr fit no other measure
        "checks.0.kind",  # final/inequality/monotone: their fields fit no other check
        "checks.1.kind",
        "checks.2.kind",
    ]


# ------------------------------------------------------------------------------------------- run key

ENV = {
    "semantics": "1",
    "jax": "0.4.35",
    "jaxlib": "0.4.35",
    "backend": "cpu",
    "device_kind": "cpu",
    "platform_version": "cpu",
    "cpu": "x86_64 GenuineIntel 6/143",
    "isa": "avx,avx2,avx512f,fma,sse,sse2",
    "threads": "2",
    "xla_flags": "",
    "x64": True,
    "matmul_precision": "None",
    "prng_impl": "threefry2x32",
}
SID = GOLDEN_SPEC_IDS[("examples/quickstart.yaml", None)]


def test_numerics_environment_has_the_keys_hashed_here() -> None:
    assert set(numerics_environment()) == set(ENV)


@pytest.mark.parametrize(
    ("key", "other"),
    [
        ("semantics", "2"),
        ("jax", "0.4.36"),
        ("jaxlib", "0.4.36"),
        ("backend", "gpu"),
        ("device_kind", "NVIDIA H100 80GB HBM3"),
        ("platform_version", "cuda 12080"),
        ("cpu", "x86_64 AuthenticAMD 25/1"),
        ("isa", "avx,avx2,fma,sse,sse2"),
        ("threads", "16"),
        ("xla_flags", "--xla_cpu_max_isa=AVX2"),
        ("x64", False),
        ("matmul_precision", "highest"),
        ("prng_impl", "rbg"),
    ],
)
def test_run_key_changes_with_every_environment_field(key: str, other: Any) -> None:
    assert run_key(SID, {**ENV, key: other}) != run_key(SID, ENV)


def test_run_key_changes_with_data_fingerprints() -> None:
    plain = run_key(SID, ENV)
    assert run_key(SID, ENV, None) == run_key(SID, ENV, {}) == plain
    one = run_key(SID, ENV, {"sparse_regression": "a" * 64})
    assert one != plain
    assert run_key(SID, ENV, {"sparse_regression": "b" * 64}) != one
    assert run_key(SID, ENV, {"other_dataset": "a" * 64}) != one


def _ldn_point() -> m.Spec:
    relpath, label = LDN_PHB
    (spec,) = [p.spec for p in load(SPECS / relpath).points if p.label == label]
    return spec


def _with_problem(spec: m.Spec, **changes: Any) -> m.Spec:
    document = spec.model_dump(mode="json")
    document["problem"].update(changes)
    return m.Spec.model_validate(document)


def test_ldn_run_key_includes_a_data_fingerprint() -> None:
    spec = _ldn_point()
    fingerprints = prepare(spec).fingerprints
    assert set(fingerprints) == {"sparse_regression"}
    assert len(fingerprints["sparse_regression"]) == 64
    assert prepare(spec).fingerprints == fingerprints  # deterministic
    assert run_key(id_of(spec), ENV, fingerprints) != run_key(id_of(spec), ENV)


@pytest.mark.parametrize(
    ("field", "value"),
    [("data_seed", 1), ("n", 51), ("d", 101), ("mu", 4.0), ("sigma2", 6.0), ("sparsity", 6)],
)
def test_ldn_data_fields_change_the_fingerprint(field: str, value: Any) -> None:
    spec = _ldn_point()
    changed = _with_problem(spec, **{field: value})
    before, after = prepare(spec).fingerprints, prepare(changed).fingerprints
    assert after["sparse_regression"] != before["sparse_regression"]
    assert run_key(id_of(changed), ENV, after) != run_key(id_of(spec), ENV, before)


@pytest.mark.parametrize(("field", "value"), [("alpha", 0.2), ("loss_scale", 2.0)])
def test_ldn_model_fields_leave_the_fingerprint_alone(field: str, value: Any) -> None:
    """Initialization and loss scale are not data: same fingerprint, but a different spec id."""
    spec = _ldn_point()
    changed = _with_problem(spec, **{field: value})
    assert prepare(changed).fingerprints == prepare(spec).fingerprints
    assert id_of(changed) != id_of(spec)
