"""Spec models of triggers (sharpness, loss, accuracy or step conditions), the actions they fire, and
events; stop rules are triggers too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from eosdsl.spec.base import Model, Scalar
from eosdsl.spec.optimizers import Optimizer

Threshold = Annotated[
    float | str,
    Field(
        description="A number, `mss`, or an expression over `mss`, `lr`, `lr_applied`, `step` and constants."
    ),
]


class SharpnessTrigger(Model):
    """Fires when the Hessian sharpness crosses ``threshold`` (a sign change between two steps)."""

    crosses: Literal["below", "above"]
    threshold: Threshold = "mss"


class LossTrigger(Model):
    """Fires at the first step whose training loss is below ``below``."""

    below: Scalar


class AccuracyTrigger(Model):
    """Fires at the first step whose training accuracy is at least ``at_least`` (supervised problems;
    paper 004 §4 trains "to completion", 100% training accuracy)."""

    at_least: Scalar


class StepTrigger(Model):
    """Fires at step ``at``."""

    at: int = Field(ge=0)


class Trigger(Model):
    """Exactly one of ``sharpness``, ``loss``, ``step`` or ``expr``.

    ``expr`` is a condition over parameters, ``loss``, ``lr``, ``mss``, ``step`` and constants that
    fires the first time it is true (e.g. ``u < 0``).
    """

    sharpness: SharpnessTrigger | None = None
    loss: LossTrigger | None = None
    accuracy: AccuracyTrigger | None = None
    step: StepTrigger | None = None
    expr: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        given = [k for k in ("sharpness", "loss", "accuracy", "step", "expr") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a trigger needs exactly one of sharpness, loss, accuracy, step, expr"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class Action(Model):
    """What an event does: switch the optimizer, freeze the schedule, and/or stop the run."""

    switch_optimizer: Optimizer | None = Field(
        None, description="The optimizer to switch to; without `lr` it keeps the running schedule."
    )
    freeze_schedule: bool = False
    stop: bool = False

    @model_validator(mode="after")
    def _something(self) -> Action:
        if self.switch_optimizer is None and not self.freeze_schedule and not self.stop:
            raise ValueError("an action needs switch_optimizer, freeze_schedule: true or stop: true")
        return self


class Event(Model):
    """``when`` a trigger fires (once), ``do`` an action. Evaluated inside the compiled program."""

    name: str | None = None
    when: Trigger
    do: Action
