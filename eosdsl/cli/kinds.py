"""``eosdsl kinds``: the problems, optimizers, schedules, measures, checks, events, data sources… a spec may
use, with their fields (type, default, description), read from the pydantic models in :mod:`eosdsl.spec`
(the JSON schema's source). Jax-free: the spec models import neither jax nor flax."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from eosdsl.cli.common import app, fail, out


@dataclass(frozen=True)
class Kind:
    """One choice of a section: the names it is selected by (``kind:`` / ``source:`` values, or a key
    path for events) and its model."""

    names: tuple[str, ...]
    model: type[BaseModel] | None
    doc: str = ""


def _members(union: Any) -> list[type[BaseModel]]:
    """The model classes of an ``Annotated[A | B, Field(discriminator=...)]`` (or a bare union)."""
    while typing.get_origin(union) is Annotated:
        union = typing.get_args(union)[0]
    if typing.get_origin(union) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(union) for m in _members(arg)]
    return [union] if isinstance(union, type) and issubclass(union, BaseModel) else []


def _tags(model: type[BaseModel], key: str) -> tuple[str, ...]:
    field = model.model_fields.get(key)
    if field is None:
        return (model.__name__,)
    if typing.get_origin(field.annotation) is typing.Literal:
        return tuple(str(v) for v in typing.get_args(field.annotation))
    return (model.__name__,)


def _union(union: Any, key: str = "kind") -> list[Kind]:
    return [Kind(_tags(model, key), model) for model in _members(union)]


def _events() -> list[Kind]:
    from eosdsl.spec import events as ev

    trigger = ev.Trigger.model_fields
    kinds = [Kind(("event",), ev.Event), Kind(("do",), ev.Action)]
    for name in ("sharpness", "loss", "accuracy", "step"):
        kinds.extend(Kind((f"when.{name}",), model) for model in _members(trigger[name].annotation))
    kinds.append(
        Kind(
            ("when.expr",),
            None,
            "A condition over parameters, loss, lr, mss, step and constants "
            "that fires the first time it is true (e.g. `u < 0`); a string.",
        )
    )
    return kinds


def sections() -> dict[str, tuple[str, list[Kind]]]:
    """Section name -> (where it goes in a spec, its kinds). Imported on demand (pydantic models)."""
    from eosdsl.spec import measures, networks, optimizers, problems, run_checks, sweep_checks

    return {
        "problems": ("problem: {kind: …}", _union(problems.Problem)),
        "optimizers": ("optimizer: {kind: …}", _union(optimizers.Optimizer)),
        "schedules": ("optimizer.lr: {kind: …}", _union(optimizers.Schedule)),
        "measures": ("measure: [{kind: …}]", _union(measures.Measure)),
        "checks": ("checks: [{kind: …}]", _union(run_checks.Check)),
        "sweep_checks": ("sweep.checks: [{kind: …}]", _union(sweep_checks.SweepClaim)),
        "events": ("events: [{name, when: {…}, do: {…}}]", _events()),
        "data": ("problem.data: {source: …}", _union(networks.DataSource, "source")),
        "networks": ("problem.model: {kind: …}", _union(networks.Network)),
        "losses": ("problem.loss: {kind: …}", _union(networks.Loss)),
    }


# ------------------------------------------------------------------------------------------- rendering


def type_text(annotation: Any) -> str:
    """A short type for a field: ``int``, ``number|expr``, ``"a"|"b"``, ``list[…]``, a model name."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return type_text(args[0])
    if origin is typing.Literal:
        return "|".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        if set(parts) >= {"float", "str"}:
            parts = ["number|expr" if p == "float" else p for p in parts if p != "str"]
        text = "|".join(dict.fromkeys(parts))
        return text + ("|null" if type(None) in args else "")
    if origin in (list, tuple, set, frozenset):
        if origin is tuple and Ellipsis not in args:
            return f"[{', '.join(type_text(a) for a in args)}]"  # a fixed-length YAML list
        return f"list[{', '.join(type_text(a) for a in args if a is not Ellipsis)}]"
    if origin is dict:
        return f"dict[{', '.join(type_text(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(field: Any) -> str | None:
    if field.default is PydanticUndefined and field.default_factory is None:
        return None  # required
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "…"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return value.__class__.__name__ + "()"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _doc(kind: Kind) -> str:
    text = kind.doc or (kind.model.__doc__ or "" if kind.model else "")
    return " ".join(text.strip().split("\n\n")[0].split())


def field_lines(model: type[BaseModel], skip: str | None) -> Iterator[str]:
    """``name: type = default — description`` (``required`` when there is no default)."""
    for name, field in model.model_fields.items():
        if name == skip:
            continue
        default = _default(field)
        line = f"{field.alias or name}: {type_text(field.annotation)}"
        line += " (required)" if default is None else f" = {default}"
        if field.description:
            line += f" — {' '.join(field.description.split())}"
        yield line


def _print_kind(kind: Kind, key: str, fields: bool) -> None:
    doc = _doc(kind)
    out.print(f"  {' | '.join(kind.names)}" + (f" — {doc}" if doc else ""), markup=False)
    if fields and kind.model is not None:
        for line in field_lines(kind.model, key):
            out.print(f"      {line}", markup=False)


def _key(section: str) -> str:
    return "source" if section == "data" else "kind"


@app.command()
def kinds(
    section: Annotated[
        str | None,
        typer.Argument(
            help="problems, optimizers, schedules, measures, checks, sweep_checks, events, data, networks, "
            "losses; or one kind (e.g. sharpness). Omitted: every section's kinds, without fields."
        ),
    ] = None,
    kind: Annotated[str | None, typer.Argument(help="Only this kind of the section.")] = None,
) -> None:
    """List what a spec may use — problems, measures, checks, events, data sources… — with their fields."""
    table = sections()
    if section is None:
        for name, (where, choices) in table.items():
            listed = ", ".join(n for choice in choices for n in choice.names)
            out.print(f"{name} ({where}): {listed}", markup=False)
        out.print("fields: eosdsl kinds SECTION [KIND]", markup=False)
        return
    if section not in table:  # a kind name alone: every section that has it
        found = [(name, c) for name, (_, cs) in table.items() for c in cs if section in c.names]
        if not found:
            fail(f"unknown section or kind {section!r}; sections: {', '.join(table)}")
        for name, choice in found:
            out.print(f"{name} ({table[name][0]}):", markup=False)
            _print_kind(choice, _key(name), fields=True)
        return
    where, choices = table[section]
    if kind is not None:
        choices = [c for c in choices if kind in c.names]
        if not choices:
            names = ", ".join(n for c in table[section][1] for n in c.names)
            fail(f"no {section} kind {kind!r}; {section}: {names}")
    out.print(f"{section} ({where}):", markup=False)
    for choice in choices:
        _print_kind(choice, _key(section), fields=True)
