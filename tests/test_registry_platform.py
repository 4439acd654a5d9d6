"""The numerics platform in run identity: runs computed on different CPUs never share a run key.

XLA:CPU compiles for the host processor, so the same spec gives different float32 bits on an AVX-512
Intel core and an AVX2 AMD core. These tests simulate the two machines by feeding
:func:`identity.cpu_target` two /proc/cpuinfo texts and check that exact reuse refuses the other
machine's run while ``--reuse compatible`` serves it with a note naming the difference.
"""

from __future__ import annotations

import pytest

from eosdsl.orchestration import run_one
from eosdsl.registry import Registry, identity
from eosdsl.registry.identity import (
    PLATFORM_KEYS,
    cpu_target,
    environment_difference,
    numerics_environment,
    run_key,
    xla_codegen_flags,
)
from eosdsl.spec.load import load

INTEL_FLAGS = (
    "flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512dq avx512bw avx512vl"
    " hypervisor md_clear"
)
INTEL = f"""processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
stepping\t: 8
{INTEL_FLAGS}

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
{INTEL_FLAGS}
"""

AMD = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13
stepping\t: 1
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma f16c sse4a hypervisor
"""

# The same processor as INTEL with other stepping, marketing name and non-codegen flags (mitigations,
# virtualization): XLA generates the same code, so the target must be the same.
INTEL_OTHER_STEPPING = INTEL.replace("stepping\t: 8", "stepping\t: 6").replace(
    "Platinum 8480+", "Gold 6430"
).replace(" md_clear", " md_clear flush_l1d arch_capabilities")

SPEC = """\
name: platform-tiny
precision: float64
problem: {kind: toy, params: {w: 1.0}, objective: "0.5 * w**2"}
optimizer: {kind: gd, lr: 0.1}
train: {steps: 20}
measure: [{kind: loss}]
"""


def test_cpu_target_keeps_vendor_family_model_and_codegen_features() -> None:
    intel, amd = cpu_target(INTEL), cpu_target(AMD)
    assert intel["cpu"].endswith("GenuineIntel 6/143")
    assert amd["cpu"].endswith("AuthenticAMD 25/1")
    assert intel["isa"] == "avx,avx2,avx512bw,avx512dq,avx512f,avx512vl,f16c,fma,sse,sse2,sse4_1,sse4_2,ssse3"
    assert "sse4a" in amd["isa"].split(",") and "avx512f" not in amd["isa"].split(",")
    # flags that do not change generated code stay out of the hashed target
    assert not {"fpu", "vme", "hypervisor", "md_clear"} & set(intel["isa"].split(","))
    assert cpu_target(INTEL_OTHER_STEPPING) == intel


def test_xla_codegen_flags_keep_what_changes_code() -> None:
    flags = "--xla_dump_to=/tmp/x --xla_cpu_max_isa=AVX2 --xla_cpu_enable_fast_math=false --xla_gpu_dump_ir"
    assert xla_codegen_flags(flags) == ["--xla_cpu_enable_fast_math=false", "--xla_cpu_max_isa=AVX2"]
    assert xla_codegen_flags("") == []


def test_environment_names_the_platform_and_is_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    env = numerics_environment()
    assert set(PLATFORM_KEYS) <= set(env)
    assert all(isinstance(v, (str, bool)) for v in env.values())
    monkeypatch.setattr(identity, "_read_cpuinfo", lambda: INTEL)
    intel = numerics_environment()
    monkeypatch.setattr(identity, "_read_cpuinfo", lambda: AMD)
    amd = numerics_environment()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2")
    capped = numerics_environment()
    monkeypatch.setattr(identity, "schedulable_cpus", lambda: 64)
    wide = numerics_environment()
    sid = "0" * 64
    assert len({run_key(sid, e) for e in (intel, amd, capped, wide)}) == 4
    note = environment_difference(intel, amd)
    assert note.startswith("another numerics platform") and "+avx512f" in note and "AuthenticAMD" in note
    assert environment_difference(intel, intel) == ""
    assert environment_difference({**intel, "jax": "0.0"}, intel).startswith("another environment")


def test_exact_reuse_refuses_another_cpus_run_and_compatible_serves_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(tmp_path / "registry")
    spec = load("platform-tiny.yaml", text=SPEC).spec

    monkeypatch.setattr(identity, "_read_cpuinfo", lambda: INTEL)
    on_intel = run_one(spec, registry)
    assert not on_intel.reused and on_intel.run is not None
    assert run_one(spec, registry).reused  # the same machine: exact reuse

    monkeypatch.setattr(identity, "_read_cpuinfo", lambda: AMD)
    compatible = run_one(spec, registry, reuse="compatible")
    assert compatible.reused and compatible.run is not None
    assert compatible.run.run_key == on_intel.run.run_key  # the Intel run, served ...
    assert compatible.notice is not None and compatible.notice.startswith("not bit-exact")  # ... said so
    assert "AuthenticAMD" in compatible.notice and "avx512f" in compatible.notice

    on_amd = run_one(spec, registry)  # exact: the Intel run does not stand for this machine
    assert not on_amd.reused and on_amd.run is not None
    assert on_amd.run.run_key != on_intel.run.run_key
    assert on_amd.run.env["cpu"].endswith("AuthenticAMD 25/1")
    assert on_intel.run.env["cpu"].endswith("GenuineIntel 6/143")
    assert {r.run_key for r in registry.runs()} == {on_intel.run.run_key, on_amd.run.run_key}
