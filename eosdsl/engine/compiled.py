"""Compiled programs kept on disk, so that a second run of a spec neither traces nor compiles them.

A spec's numbers are traced, so a run with another learning rate needs the same programs as the last
one. The engine's jitted entry points (``engine.program``: ``init_state``, ``run_chunk``, ``init_pack``,
``run_pack_chunk``) are named completely by their static arguments (the spec's structure key, the
problem's layout, the chunk length) and the shapes and dtypes of their traced arguments, given the
code that traces them. :class:`CachedEntry` wraps such an entry point and keys its compiled executable
by exactly that:

    key = sha256(entry point, static arguments, pytree structure and avals of the traced arguments,
                 the source of every eosdsl module, the versions of the libraries traced through
                 (jax, jaxlib, flax, optax, numpy, ml_dtypes), the jax settings that change tracing,
                 the numerics platform ``eosdsl.cache.platform_tag``)

and stores it (``jax.experimental.serialize_executable``) as ``<cache root>/programs/<platform>/<key>.bin``.
A hit skips tracing and lowering as well as compiling: JAX's own persistent compilation cache is keyed by
the lowered program, so finding a program there still costs tracing the step and lowering it (≈0.5–1 s
for a network's step with curvature measurements on this project's 2-core CPU). The executable loaded
back is the one compiled, so its numbers are bit-identical to a fresh compilation's
(``tests/test_compiled_cache.py``). Any edit of eosdsl's source, any library upgrade, a changed
``XLA_FLAGS`` or another processor gives other keys; an entry that cannot be read or loaded is compiled
again and overwritten. Nothing here enters a run's identity.

This cache replaces JAX's persistent cache for the engine, and steps aside when a user has configured
that one (``JAX_COMPILATION_CACHE_DIR``): an executable JAX loaded from its cache serializes into an
entry that fails when run ("Function … not found", measured with jax 0.10.2). Calls under a trace
(``jax.eval_shape``, as the pack planner sizes a member) and all calls with ``EOSDSL_CACHE_DIR=off`` go
to the jitted function itself.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any

import jax

from eosdsl.atomic import atomic_write
from eosdsl.cache import cache_root, platform_tag, source_digest

PROGRAM_FORMAT = 1
"""Version of the entry layout (part of every key)."""

_TRACING_SETTINGS = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_numpy_rank_promotion",
    "jax_numpy_dtype_promotion",
    "jax_default_prng_impl",
    "jax_threefry_partitionable",
    "jax_enable_checks",
    "jax_debug_nans",
    "jax_disable_jit",
)


def _static_text(value: Any) -> str:
    key = getattr(value, "key", None)  # engine.program.Structure: its key names the program
    return key if isinstance(key, str) else repr(value)


def _aval_text(leaf: Any) -> str:
    aval = jax.typeof(leaf)
    return f"{aval.str_short()}{'w' if getattr(aval, 'weak_type', False) else ''}"


@lru_cache(maxsize=1)
def _prepare_runtime() -> None:
    """Initialize what jax initializes while *lowering* and a loaded executable needs at run time.

    jaxlib binds the LAPACK kernels behind ``eigh``, ``qr`` and ``svd`` (custom calls of the CPU
    programs) when the first such operation is lowered; an executable loaded without lowering would
    call unbound kernels (a segmentation fault, measured with jax 0.10.2). Lowering one small ``eigh``
    binds them all.
    """
    import jax.numpy as jnp
    import numpy as np

    jax.jit(jnp.linalg.eigh).lower(np.eye(2, dtype=np.float32))


def _traced(leaves: list[Any]) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


class CachedEntry:
    """A jitted entry point whose compiled executables persist across processes (module docstring).

    ``CachedEntry(fn, static_argnums)`` jits ``fn`` with those static arguments; calling it looks the
    executable up in this process, then on disk, and compiles (and stores) it only when both miss.
    ``.jitted`` is the plain jitted function.
    """

    def __init__(self, fn: Any, static_argnums: tuple[int, ...]) -> None:
        self.jitted = jax.jit(fn, static_argnums=static_argnums)
        self.static_argnums = static_argnums
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self._loaded: dict[str, Any] = {}

    def __call__(self, *args: Any) -> Any:
        dynamic = self._dynamic(args)
        leaves, tree = jax.tree.flatten(dynamic)
        root = self._root()
        if root is None or _traced(leaves):
            return self.jitted(*args)
        return self._executable(root, args, leaves, tree)(*dynamic)

    def compile(self, *args: Any) -> Any:
        """The executable of a call with these arguments, loaded or compiled now without running it
        (what timing a program needs: its first call then does not include compilation), as a function
        to call with these same arguments only (its static ones are fixed in the executable: others
        passed later are ignored)."""
        root = self._root()
        if root is None:
            executable = self.jitted.lower(*args).compile()
        else:
            executable = self._executable(root, args, *jax.tree.flatten(self._dynamic(args)))
        return lambda *call: executable(*self._dynamic(call))

    def _dynamic(self, args: tuple) -> list[Any]:
        """The arguments that are not static, in order (what the executable takes)."""
        return [a for i, a in enumerate(args) if i not in self.static_argnums]

    @staticmethod
    def _root() -> Path | None:
        """The cache directory, or None when this cache is off: no cache directory, or JAX's own
        compilation cache configured instead."""
        root = cache_root()
        return None if root is None or jax.config.jax_compilation_cache_dir else root

    def _executable(self, root: Path, args: tuple, leaves: list[Any], tree: Any) -> Any:
        key = self.key(args, leaves, tree)
        compiled = self._loaded.get(key)
        if compiled is None:
            folder = root / "programs" / platform_tag()
            compiled = self._loaded[key] = self._load_or_compile(folder, key, args)
        return compiled

    def key(self, args: tuple, leaves: list[Any], tree: Any) -> str:
        """The cache key of a call (module docstring)."""
        document = {
            "entry": self.name,
            "static": [_static_text(args[i]) for i in self.static_argnums],
            "tree": str(tree),
            "avals": [_aval_text(leaf) for leaf in leaves],
            "settings": {name: str(getattr(jax.config, name, None)) for name in _TRACING_SETTINGS},
            "format": PROGRAM_FORMAT,
            "source": source_digest(),
            "platform": platform_tag(),
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def _load_or_compile(self, folder: Path, key: str, args: tuple) -> Any:
        from jax.experimental import serialize_executable

        path = folder / f"{key}.bin"
        try:
            blob = path.read_bytes()
        except OSError:  # absent (or unreadable): compiled and stored below
            blob = None
        if blob is not None:
            try:
                payload, in_tree, out_tree = pickle.loads(blob)  # our own cache files only
                _prepare_runtime()  # only before loading: compiling below binds the kernels itself
                return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
            except Exception:  # noqa: BLE001 — a damaged or foreign entry is a miss; overwritten below
                pass
        compiled = self.jitted.lower(*args).compile()
        try:
            blob = pickle.dumps(serialize_executable.serialize(compiled))
            with atomic_write(path) as handle:
                handle.write(blob)
        except Exception:  # noqa: BLE001 — an executable that cannot be serialized or stored still runs
            pass
        return compiled


def cached_entry(*, static_argnums: tuple[int, ...]) -> Any:
    """Decorator form of :class:`CachedEntry`."""
    return lambda fn: CachedEntry(fn, static_argnums)


__all__ = ["PROGRAM_FORMAT", "CachedEntry", "cached_entry"]
