"""Content-addressed registry of runs: identity (what a run *is*) and the on-disk store (where it lives).

See :mod:`eosdsl.registry.identity` for how ``spec_id``/``run_key`` are defined and
:mod:`eosdsl.registry.store` for the layout and the atomic commit protocol.
"""

from __future__ import annotations

from eosdsl.registry import zarr_io
from eosdsl.registry.identity import (
    NON_SEMANTIC_KEYS,
    SEMANTICS_VERSION,
    canonical_json,
    jsonable,
    numerics_environment,
    provenance,
    run_key,
    spec_id,
    sweep_id,
)
from eosdsl.registry.store import (
    AmbiguousRun,
    DamagedRun,
    Registry,
    RegistryError,
    StagedRun,
    StoredRun,
    UnknownRun,
    default_root,
)

__all__ = [
    "NON_SEMANTIC_KEYS",
    "SEMANTICS_VERSION",
    "AmbiguousRun",
    "DamagedRun",
    "Registry",
    "RegistryError",
    "StoredRun",
    "StagedRun",
    "UnknownRun",
    "canonical_json",
    "default_root",
    "jsonable",
    "numerics_environment",
    "provenance",
    "run_key",
    "spec_id",
    "sweep_id",
    "zarr_io",
]
