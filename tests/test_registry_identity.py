"""Identity of specs and runs: golden ids, invariances, sensitivity, strictness."""

from __future__ import annotations

import copy
import hashlib
import math
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from eosdsl.registry import identity
from eosdsl.registry.identity import (
    NON_SEMANTIC_KEYS,
    SEMANTICS_VERSION,
    canonical_json,
    jsonable,
    numerics_environment,
    provenance,
    run_key,
    spec_id,
)

SPEC_A = {
    "name": "quad-gd",
    "problem": {"kind": "quadratic", "dim": 2, "eigenvalues": [1.0, 10.0]},
    "optimizer": {"name": "gd", "lr": 0.19},
    "steps": 100,
    "seed": 0,
}
SPEC_B = {
    "problem": {"kind": "mlp", "widths": [4, 8, 1], "activation": "tanh"},
    "optimizer": {"name": "momentum", "lr": 0.01, "beta": 0.9, "nesterov": False},
    "curvature": {"every": 10, "method": "lanczos", "iters": 20},
    "dtype": "float32",
    "seed": 3,
    "note": "ünï",
    "extra": None,
}

# Canonical text hashed for each spec: top-level name dropped, keys sorted, no spaces, raw UTF-8.
CANONICAL_A = (
    '{"optimizer":{"lr":0.19,"name":"gd"},'
    '"problem":{"dim":2,"eigenvalues":[1.0,10.0],"kind":"quadratic"},"seed":0,"steps":100}'
)
CANONICAL_B = (
    '{"curvature":{"every":10,"iters":20,"method":"lanczos"},"dtype":"float32","extra":null,'
    '"note":"ünï","optimizer":{"beta":0.9,"lr":0.01,"name":"momentum","nesterov":false},'
    '"problem":{"activation":"tanh","kind":"mlp","widths":[4,8,1]},"seed":3}'
)
GOLDEN_A = "09f7771a4ff816828177b9c64cc29130203d05910fec076d03caed24ef01caec"
GOLDEN_B = "ff26236b7a11d413287509fa6db25b1b744dd68a100cd365794350a8646b7134"

ENV = {
    "semantics": "1",
    "jax": "0.10.2",
    "jaxlib": "0.10.2",
    "backend": "cpu",
    "device_kind": "cpu",
    "platform_version": "cpu",
    "cpu": "x86_64 GenuineIntel 6/143",
    "isa": "avx,avx2,avx512f,fma,sse,sse2",
    "threads": "2",
    "xla_flags": "",
    "x64": False,
    "matmul_precision": "None",
    "prng_impl": "threefry2x32",
}


# ------------------------------------------------------------------------------------------ golden


@pytest.mark.parametrize(
    ("spec", "canonical", "golden"),
    [(SPEC_A, CANONICAL_A, GOLDEN_A), (SPEC_B, CANONICAL_B, GOLDEN_B)],
    ids=["A", "B"],
)
def test_spec_id_golden(spec: dict, canonical: str, golden: str) -> None:
    semantic = {k: v for k, v in spec.items() if k not in NON_SEMANTIC_KEYS}
    assert canonical_json(semantic) == canonical
    by_hand = hashlib.sha256(b"eosdsl-spec/v2\n" + canonical.encode("utf-8")).hexdigest()
    assert by_hand == golden
    assert spec_id(spec) == golden


def test_run_key_golden_matches_documented_recipe() -> None:
    sid = GOLDEN_B
    data = {"mnist": "ab" * 32}
    payload = canonical_json({"spec_id": sid, "env": ENV, "data": data})
    assert payload.startswith('{"data":{"mnist":')  # keys sorted: data, env, spec_id
    expected = hashlib.sha256(b"eosdsl-run/v1\n" + payload.encode("utf-8")).hexdigest()
    assert run_key(sid, ENV, data) == expected


# ------------------------------------------------------------------------------------------ invariance


def _reverse_key_order(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _reverse_key_order(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [_reverse_key_order(v) for v in obj]
    return obj


def test_spec_id_ignores_key_order() -> None:
    reordered = _reverse_key_order(SPEC_B)
    assert list(reordered) != list(SPEC_B)
    assert spec_id(reordered) == spec_id(SPEC_B)


@pytest.mark.parametrize("key", sorted(NON_SEMANTIC_KEYS))
def test_spec_id_ignores_non_semantic_top_level_keys(key: str) -> None:
    base = spec_id(SPEC_A)
    for value in ["other", "a longer description", ["t1", "t2"], None]:
        assert spec_id({**SPEC_A, key: value}) == base
    stripped = {k: v for k, v in SPEC_A.items() if k not in NON_SEMANTIC_KEYS}
    assert spec_id(stripped) == base


def test_tuples_hash_like_lists() -> None:
    as_tuple = copy.deepcopy(SPEC_B)
    as_tuple["problem"]["widths"] = (4, 8, 1)
    assert spec_id(as_tuple) == spec_id(SPEC_B)


# ------------------------------------------------------------------------------------------ sensitivity


def _leaf_paths(obj: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaf_paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaf_paths(v, (*path, i))
    else:
        yield path


def _perturb(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 0
    raise AssertionError(f"unexpected leaf {value!r}")


def _set(obj: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value


@pytest.mark.parametrize("spec", [SPEC_A, SPEC_B], ids=["A", "B"])
def test_every_semantic_leaf_changes_spec_id(spec: dict) -> None:
    base = spec_id(spec)
    paths = [p for p in _leaf_paths(spec) if p[0] not in NON_SEMANTIC_KEYS]
    assert len(paths) >= 8
    seen = {base}
    for path in paths:
        changed = copy.deepcopy(spec)
        _set(changed, path, _perturb(_get(spec, path)))
        new = spec_id(changed)
        assert new not in seen, f"perturbing {path} did not produce a fresh id"
        seen.add(new)


def _get(obj: Any, path: tuple) -> Any:
    for part in path:
        obj = obj[part]
    return obj


def test_nested_name_is_semantic() -> None:
    changed = copy.deepcopy(SPEC_A)
    changed["optimizer"]["name"] = "sgd"
    assert spec_id(changed) != spec_id(SPEC_A)


def test_structure_changes_spec_id() -> None:
    assert spec_id({**SPEC_A, "new_field": 1}) != spec_id(SPEC_A)
    assert spec_id({**SPEC_A, "steps": 100.0}) != spec_id(SPEC_A)  # validated specs fix types


# ------------------------------------------------------------------------------------------ strictness


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_rejected_with_path(bad: float) -> None:
    spec = copy.deepcopy(SPEC_B)
    spec["optimizer"]["lr"] = bad
    with pytest.raises(ValueError, match=r"\$\.optimizer\.lr"):
        spec_id(spec)
    spec = copy.deepcopy(SPEC_A)
    spec["problem"]["eigenvalues"][1] = bad
    with pytest.raises(ValueError, match=r"\$\.problem\.eigenvalues\[1\]"):
        canonical_json(spec)
    with pytest.raises(ValueError, match=r"\$\['odd key'\]"):
        canonical_json({"odd key": bad})


def test_canonical_json_rejects_foreign_types_and_keys() -> None:
    with pytest.raises(TypeError, match=r"\$\.x"):
        canonical_json({"x": np.float32(0.1)})
    with pytest.raises(TypeError, match="non-string"):
        canonical_json({1: "a"})
    with pytest.raises(TypeError):
        spec_id(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_canonical_json_format() -> None:
    assert canonical_json({"b": [1, (2, 3)], "a": {"é": True}}) == '{"a":{"é":true},"b":[1,[2,3]]}'


def test_jsonable_converts_numpy_but_rejects_nan() -> None:
    out = jsonable({"a": np.float32(0.5), "b": np.arange(3), "c": (np.bool_(True),), "d": np.int64(7)})
    assert out == {"a": 0.5, "b": [0, 1, 2], "c": [True], "d": 7}
    assert type(out["d"]) is int
    with pytest.raises(ValueError, match=r"\$\.v\[1\]"):
        jsonable({"v": np.array([1.0, np.nan])})


# ------------------------------------------------------------------------------------------ run_key


def test_run_key_depends_on_spec_env_and_data() -> None:
    base = run_key(GOLDEN_A, ENV)
    assert run_key(GOLDEN_A, ENV, None) == run_key(GOLDEN_A, ENV, {}) == base
    assert run_key(GOLDEN_B, ENV) != base
    for key in ENV:
        changed = {**ENV, key: _perturb(ENV[key])}
        assert run_key(GOLDEN_A, changed) != base, key
    with_data = run_key(GOLDEN_A, ENV, {"train": "00" * 32})
    assert with_data != base
    assert run_key(GOLDEN_A, ENV, {"train": "11" * 32}) != with_data
    assert run_key(GOLDEN_A, ENV, {"test": "00" * 32}) != with_data
    assert run_key(GOLDEN_A, dict(reversed(ENV.items()))) == base


def test_run_key_validates_spec_id() -> None:
    with pytest.raises(ValueError, match="spec_id"):
        run_key("not-hex", ENV)
    with pytest.raises(ValueError, match="spec_id"):
        run_key(GOLDEN_A.upper(), ENV)


# ------------------------------------------------------------------------------------------ environment


def test_numerics_environment_shape() -> None:
    env = numerics_environment()
    assert set(env) == set(ENV)
    assert env["semantics"] == SEMANTICS_VERSION
    assert isinstance(env["x64"], bool)
    assert all(isinstance(v, (str, bool)) for v in env.values())
    canonical_json(env)  # hashable as is
    assert run_key(GOLDEN_A, env) == run_key(GOLDEN_A, numerics_environment())


def test_provenance_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "_git_info", lambda directory=None: {"commit": "c" * 40, "dirty": True})
    identity._process_provenance.cache_clear()  # read once per process: forget the real one
    prov = provenance()
    identity._process_provenance.cache_clear()
    expected = {"git", "hostname", "platform", "python", "cpu_model", "cpu_features", "packages", "timestamp"}
    assert expected <= set(prov)
    assert prov["git"] == {"commit": "c" * 40, "dirty": True}
    assert set(identity.PROVENANCE_PACKAGES) == set(prov["packages"])
    assert prov["packages"]["numpy"] == np.__version__
    assert prov["timestamp"].endswith("+00:00")
    jsonable(prov)


def test_git_info_parses_and_never_raises(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    calls = []

    def fake_run(args, **kwargs):
        calls.append(args)
        out = "abc123\n" if "rev-parse" in args else " M eosdsl/x.py\n"
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    monkeypatch.setattr(identity.subprocess, "run", fake_run)
    assert identity._git_info(tmp_path) == {"commit": "abc123", "dirty": True}
    assert all("--no-optional-locks" in c for c in calls)  # read-only: never touches the index

    def no_git(args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(identity.subprocess, "run", no_git)
    assert identity._git_info(tmp_path) is None

    def timeout(args, **kwargs):
        raise subprocess.TimeoutExpired(args, 5)

    monkeypatch.setattr(identity.subprocess, "run", timeout)
    assert identity._git_info(tmp_path) is None

    def not_a_repo(args, **kwargs):
        return subprocess.CompletedProcess(args, 128, stdout="", stderr="fatal: not a git repository")

    monkeypatch.setattr(identity.subprocess, "run", not_a_repo)
    assert identity._git_info(tmp_path) is None
