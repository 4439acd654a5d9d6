"""Readable names in figures: Greek letters for spec paths (``constants.eta_f`` → ``η_f``,
``optimizer.lr`` → ``η``), and run labels that say what differs between the runs of one figure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from eosdsl.spec.sweep import format_value

__all__ = [
    "GREEK",
    "difference_labels",
    "flatten",
    "pretty",
    "pretty_assignment",
    "series_label",
    "wrap_title",
]

GREEK = {
    "alpha": "α",
    "beta": "β",
    "gamma": "γ",
    "delta": "δ",
    "epsilon": "ε",
    "eps": "ε",
    "zeta": "ζ",
    "eta": "η",
    "theta": "θ",
    "kappa": "κ",
    "lambda": "λ",
    "lam": "λ",
    "mu": "μ",
    "nu": "ν",
    "xi": "ξ",
    "rho": "ρ",
    "sigma": "σ",
    "tau": "τ",
    "phi": "φ",
    "chi": "χ",
    "psi": "ψ",
    "omega": "ω",
}
ALIASES = {"lr": "η", "momentum": "β", "case": "case"}
SKIPPED_PATHS = ("name", "description", "sweep", "measure", "checks", "claims", "tags")
MAX_LABEL_PATHS = 4
TITLE_WIDTH = 70


def pretty(path: str) -> str:
    """A short readable name of a spec path or series: ``constants.eta_f`` → ``η_f``, ``problem.alpha`` →
    ``α``, ``optimizer.lr`` → ``η``, ``optimizer.kind`` → ``optimizer``, ``test_loss`` → ``test loss``."""
    parts = str(path).split(".")
    last = parts[-1]
    if last == "kind" and len(parts) > 1:
        return parts[-2]
    if last in ALIASES:
        return ALIASES[last]
    head, sep, tail = last.partition("_")
    if head in GREEK:
        return GREEK[head] + sep + tail
    return last.replace("_", " ") if len(parts) == 1 else last


def series_label(name: str) -> str:
    """The axis label of a stored series: :func:`pretty` of a plain name (``test_loss`` → ``test loss``),
    the whole name of a measure's component (``norm2.A``, ``rotation.cos``), whose last part alone would
    not say what it measures."""
    return pretty(name) if "." not in name else name


def pretty_assignment(path: str, value: Any) -> str:
    """``constants.eta=0.003`` → ``η=0.003``; a case label stands alone."""
    return format_value(value) if path == "case" else f"{pretty(path)}={format_value(value)}"


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Scalar leaves of a spec by dotted path (lists by index), without the paths of :data:`SKIPPED_PATHS`
    or null values; ``events`` is one leaf listing the events' names."""
    flat: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        items: Sequence[tuple[str, Any]] = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, list | tuple):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        return {prefix: tree} if prefix else {}
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else key
        if not prefix and key in SKIPPED_PATHS or value is None:
            continue
        if not prefix and key == "events" and isinstance(value, list | tuple):  # named, not field by field
            names = [
                str(e.get("name") or e.get("kind") or "?") if isinstance(e, Mapping) else "?" for e in value
            ]
            if names:
                flat["events"] = ", ".join(names)
            continue
        flat.update(flatten(value, path))
    return flat


def _differing(facets: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys whose value is not the same in every facet dict (absent counts), in first-seen order."""
    keys = list(dict.fromkeys(key for facet in facets for key in facet))
    missing = object()
    return [k for k in keys if len({repr(facet.get(k, missing)) for facet in facets}) > 1]


def _render(facet: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``case, η=0.01, α=0.5``: the keys' values, with full paths where two keys share a pretty name."""
    names = [pretty(key) for key in keys]
    shown = []
    for key, name in zip(keys, names, strict=True):
        if key not in facet:
            continue
        if key == "case":
            shown.append(format_value(facet[key]))
        else:
            shown.append(f"{key if names.count(name) > 1 else name}={format_value(facet[key])}")
    return ", ".join(shown)


def difference_labels(
    swept: Sequence[Mapping[str, Any] | None], specs: Sequence[Mapping[str, Any]], fallback: Sequence[str]
) -> list[str]:
    """One label per run, naming what differs between the runs.

    ``swept[i]`` is the case label and swept values of a sweep member (``None`` for a loose run); when
    every run has them and they tell the runs apart, they make the label (``hb, η=0.003``). Otherwise
    the differing spec paths do (at most :data:`MAX_LABEL_PATHS`). A label that is empty or not unique
    gets ``fallback[i]`` (the spec name and short id) added.
    """
    labels: list[str] = []
    if swept and all(facet is not None for facet in swept):
        facets = [dict(facet or {}) for facet in swept]
        keys = _differing(facets)
        labels = [_render(facet, keys) for facet in facets]
    if not labels or len(set(labels)) < len(labels) or not all(labels):
        flat = [flatten(spec) for spec in specs]
        keys = _differing(flat)[:MAX_LABEL_PATHS]
        labels = [_render(facet, keys) for facet in flat]
    if len(specs) == 1:
        return [fallback[0]]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [
        f"{label} ({extra})" if label and label in repeated else label or extra
        for label, extra in zip(labels, fallback, strict=True)
    ]


def wrap_title(text: str, width: int = TITLE_WIDTH) -> str:
    """A long title (a sweep member's name lists its case and values) broken into lines of at most
    ``width`` characters, after a comma or blank where it can, so it is never cut off; no character is
    dropped (``"".join(lines) == text``)."""
    lines = [""]
    for token in re.split(r"(?<=[,\s])", text):
        while len(token) > width:  # a token longer than a line: cut it
            if lines[-1]:
                lines.append("")
            lines[-1], token = token[:width], token[width:]
            lines.append("")
        if lines[-1] and len(lines[-1]) + len(token) > width:
            lines.append("")
        lines[-1] += token
    return "\n".join(line for line in lines if line)
