"""Cross-reference checks pydantic cannot do: every expression parses and uses only names in scope.

Scopes, by where an expression appears:

- numbers of the problem, optimizer and schedules: the spec's ``constants``;
- the toy objective: its parameters, ``coefficients``, earlier ``definitions`` and constants;
- event thresholds: constants and ``mss``, ``lr``, ``lr_applied``, ``step``;
- ``expr`` triggers: those plus the parameters, ``loss`` and ``sharpness``;
- derived measures and checks: the recorded series (by expression name), references, constants;
- a ``measured`` learning rate: constants, ``sharpness``, ``loss``, ``grad_norm``;
- ``start.values``: the series the stage run records, its constants and references. Their names are
  constants of the spec; until the stage is resolved (``start.run``) an expression using them is
  compiled but not evaluated (the resolved spec is checked again with the numbers).

An expression over constants alone is also evaluated (in float64) with the spec's constants: it must
give one finite number (and one float32 can hold, for ``precision: float32``), so ``"1e400"``,
``"-inf"``, ``"eps[0]"`` are refused here rather than failing (or running with a NaN) later.
"""

from __future__ import annotations

import ast
import math
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_origin

import numpy as np
from pydantic import ValidationError

from eosdsl.expr import CONSTANTS, FUNCTIONS, Expr, ExprError, compile_expr
from eosdsl.expr.across import OPERATORS, STEP, Typed, check_series_expression, uses_across
from eosdsl.expr.compiler import real_number
from eosdsl.spec import models as m
from eosdsl.spec.checks import CLAIM_OPS
from eosdsl.spec.errors import LocatedError
from eosdsl.spec.measures import (
    RECURSION_SERIES,
    FlowProjectionMeasure,
    HessianTraceMeasure,
    SpectralDensityMeasure,
)
from eosdsl.spec.networks import SupervisedProblem
from eosdsl.spec.optimizers import MEASURED_NAMES
from eosdsl.spec.overrides import OverrideError, split_dotted
from eosdsl.spec.recorded import param_names, recorded_series
from eosdsl.spec.stages import (
    NOT_IN_STAGE,
    START_STEP,
    event_labels,
    load_upstream,
    resolved_start_errors,
    stage_data,
)
from eosdsl.spec.toy import as_toy

Path = tuple[str | int, ...]

RUNTIME_NAMES = ("mss", "lr", "lr_applied", "step")
REFERENCES = {"ldn_regression": ("test_loss_min_l1", "test_loss_min_l2")}
HAS_TEST_LOSS = frozenset({"ldn_regression", "supervised"})
SUPERVISED_MEASURES = frozenset(
    {"accuracy", "test_accuracy", "group_norms", "dead_units", "residual", "data_covariance"}
)


def series_names(spec: m.Spec) -> list[str]:
    """Expression names of the series a run of ``spec`` records (derived ones included), from the one
    table :func:`eosdsl.spec.recorded.recorded_series` (re-exported here with ``param_names``)."""
    return list(dict.fromkeys(rec.expression for rec in recorded_series(spec)))


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _where(err: ExprError) -> str:
    return f" (at column {err.offset + 1} of the expression)" if err.offset is not None else ""


def constant_value_problem(expr: Expr, constants: Mapping[str, float], precision: str) -> str | None:
    """Why ``expr``, evaluated (float64, with NumPy: validation never imports JAX) with ``constants``, is
    not one finite number; ``None`` if it is."""
    try:
        value = expr.with_numpy(constants)
    except ExprError as err:
        return f"{err.message}{_where(err)}"
    shown = f"`{expr.source[:60]}`"
    if value.shape != ():
        return f"{shown} must be one number, but evaluates to an array of shape {value.shape}"
    if value.dtype.kind not in "biuf":
        return f"{shown} must be a real number, but evaluates to {value.dtype}"
    number = float(value)
    if not math.isfinite(number):
        return f"{shown} evaluates to {number}; a number here must be finite"
    if precision == "float32" and abs(number) > _FLOAT32_MAX:
        return f"{shown} evaluates to {number:.6g}, beyond the largest float32 (precision: float32)"
    return None


def initial_objective_problem(problem: m.ToyProblem, constants: Mapping[str, float]) -> str | None:
    """Why a hand-written toy objective (with its definitions) cannot be evaluated at the initial
    parameters, e.g. ``u[0]`` of a scalar ``u``; ``None`` if it can. Evaluated (float64) as the run does."""
    import jax

    from eosdsl.problems.build import host_problem, problem_fns
    from eosdsl.spec.scope import Scope

    scope = Scope(constants, np.float64)
    try:
        with jax.enable_x64(True):
            host = host_problem(problem, scope)
            problem_fns(problem, scope).loss(host.params, {})
    except ExprError as err:
        return f"cannot be evaluated at the initial parameters: {err.message}{_where(err)}"
    return None


def _value_fields(model: m.Model) -> list[str]:
    """The fields of ``model`` that hold values, not a choice of words: every field but the ``Literal``
    ones (``kind``, ``method``, ``lr_convention``, …), whose strings are never expressions."""
    return [
        name for name, info in type(model).model_fields.items() if get_origin(info.annotation) is not Literal
    ]


class _Checker:
    def __init__(self, spec: m.Spec) -> None:
        self.spec = spec
        self.errors: list[LocatedError] = []
        start = spec.start
        self.pending = set(start.values) if start is not None and start.run is None else set()
        self.constants = [*spec.constants, *sorted(self.pending - set(spec.constants))]

    def expr(self, source: Any, path: Path, names: Iterable[str], evaluate: bool = False) -> Expr | None:
        """``source`` (if a string) compiles over ``names``; with ``evaluate``, it is an expression over
        the constants that must give one finite number. Returns the compiled expression, if it compiled."""
        if not isinstance(source, str):
            return None
        try:
            compiled = compile_expr(source, names=list(names))
        except ExprError as err:
            self.errors.append(LocatedError(path, f"{err.message}{_where(err)}"))
            return None
        if evaluate and not compiled.names & self.pending:
            problem = constant_value_problem(compiled, self.spec.constants, self.spec.precision)
            if problem is not None:
                self.errors.append(LocatedError(path, problem))
        return compiled

    def scalars(self, model: Any, path: Path, names: Iterable[str]) -> None:
        """Every string in a numeric field of ``model`` (recursively) is an expression over ``names``."""
        names = list(names)
        if isinstance(model, m.Measured):
            return  # its expression reads measurements: checked by `measured_rates`
        if isinstance(model, m.Model):
            for field in _value_fields(model):
                self.scalars(getattr(model, field), (*path, field), names)
        elif isinstance(model, list):
            for i, item in enumerate(model):
                self.scalars(item, (*path, i), names)
        elif isinstance(model, str) and path:
            self.expr(model, path, names, evaluate=set(names) <= set(self.constants))

    def run(self) -> list[LocatedError]:
        spec, const = self.spec, self.constants
        self.problem(spec.problem)
        self.scalars(spec.optimizer, ("optimizer",), const)
        params = param_names(spec.problem)
        runtime = [*const, *RUNTIME_NAMES]
        for i, event in enumerate(spec.events):
            self.trigger(event.when, ("events", i, "when"), runtime, params)
            if event.do.switch_optimizer is not None:
                self.scalars(event.do.switch_optimizer, ("events", i, "do", "switch_optimizer"), const)
        for i, trig in enumerate(spec.train.stop):
            self.trigger(trig, ("train", "stop", i), runtime, params)
        self.measures_and_checks()
        self.measured_rates()
        self.directional()
        self.dynamics()
        self.stages()
        return self.errors

    def dynamics(self) -> None:
        """A ``map`` or ``ode`` optimizer acts on a closed-form problem's named parameters: its keys are
        parameters, its expressions read the parameters, the constants (and a map ``lr``)."""
        params = param_names(self.spec.problem)
        measured = {meas.kind for meas in self.spec.measure}
        if "ode_steps" in measured and not any(isinstance(o, m.Ode) for o, _ in self.optimizers()):
            at = next(i for i, meas in enumerate(self.spec.measure) if meas.kind == "ode_steps")
            self.errors.append(LocatedError(("measure", at, "kind"), "ode_steps needs an `ode` optimizer"))
        for i, meas in enumerate(self.spec.measure):
            if meas.kind == "ode_steps" and getattr(meas, "every", 1) != 1:
                message = (
                    f"ode_steps records each step's own sub-step counts and cap hits: it needs every: 1 "
                    f"(every: {meas.every} would leave the steps between records, and their cap hits, out)"
                )
                self.errors.append(LocatedError(("measure", i, "every"), message))
        for opt, path in self.optimizers():
            if not isinstance(opt, m.Map | m.Ode):
                continue
            field = "update" if isinstance(opt, m.Map) else "rhs"
            if not params:
                self.errors.append(
                    LocatedError(
                        (*path, "kind"),
                        f"`{opt.kind}` dynamics act on named parameters: use a closed-form problem "
                        f"(toy, relu_scalar, ...), not {self.spec.problem.kind}",
                    )
                )
                continue
            if isinstance(opt, m.Ode) and opt.method == "dopri5":
                self.tolerances(opt, path)
            if isinstance(opt, m.Ode) and opt.method == "dopri5" and "ode_steps" not in measured:
                self.errors.append(
                    LocatedError(
                        (*path, "method"),
                        "dopri5 records its sub-step counts and cap hits: add `{kind: ode_steps}` to measure",
                    )
                )
            names = [*params, *self.constants] + (["lr"] if isinstance(opt, m.Map) else [])
            for key, source in getattr(opt, field).items():
                if key not in params:
                    known = ", ".join(params)
                    self.errors.append(
                        LocatedError((*path, field, key), f"no parameter '{key}' (parameters: {known})")
                    )
                else:
                    self.expr(source, (*path, field, key), names)

    def tolerances(self, opt: m.Ode, path: Path) -> None:
        """A ``dopri5`` tolerance, resolved: rtol ≥ 0, atol ≥ 0, not both 0 (HNW II.4 allows rtol = 0 with
        atol > 0: pure absolute control). Values that do not resolve (an expression over a start value,
        or one already reported) are left alone."""
        values = {name: self.constant(getattr(opt, name)) for name in ("rtol", "atol")}
        for name, value in values.items():
            if value is not None and value < 0:
                self.errors.append(LocatedError((*path, name), f"{name} must be ≥ 0, got {value:g}"))
        if values["rtol"] == 0 and values["atol"] == 0:
            message = "rtol and atol are both 0: no error estimate can meet that; give atol > 0 or rtol > 0"
            self.errors.append(LocatedError((*path, "atol"), message))

    def constant(self, source: float | str) -> float | None:
        """The value of a number or an expression over the constants; None if it has none (yet)."""
        if not isinstance(source, str):
            return float(source)
        try:
            value = compile_expr(source, names=list(self.spec.constants)).with_numpy(self.spec.constants)
        except ExprError:
            return None
        return real_number(value)

    def stages(self) -> None:
        """``stages`` set no key a stage does not inherit; an unresolved ``start`` names a stage that is a
        valid spec, and its ``values`` are single numbers on the series that stage records, named apart
        from the constants (eosdsl.spec.stages)."""
        spec = self.spec
        inherited = True
        for name, sets in spec.stages.items():
            for key in sets:
                top = key.split(".")[0]
                if top in NOT_IN_STAGE:
                    message = f"a stage is one plain run; it may not set `{top}`"
                    self.errors.append(LocatedError(("stages", name, key), message))
                    inherited = False
        start = spec.start
        self.errors += resolved_start_errors(spec)
        if start is None or start.run is not None or not inherited:
            return
        if start.stage is not None and start.stage not in spec.stages:
            known = ", ".join(f"'{s}'" for s in spec.stages) or "none"
            message = f"unknown stage '{start.stage}' (stages of this spec: {known})"
            self.errors.append(LocatedError(("start", "stage"), message))
            return
        for name in start.values:
            if not name.isidentifier() or name.startswith("__"):
                self.errors.append(LocatedError(("start", "values", name), f"'{name}' is not a name"))
            elif name in spec.constants or name in FUNCTIONS or name in CONSTANTS:
                message = f"'{name}' is already a constant or function; choose another name"
                self.errors.append(LocatedError(("start", "values", name), message))
        if start.spec is not None:  # another spec file (eosdsl.spec.stages.load_upstream)
            loaded, errors = load_upstream(start.spec)
            self.errors += errors
            if loaded is not None:
                self.start_values(loaded.spec)
            return
        assert start.stage is not None
        where: Path = ("stages", start.stage)
        sets = spec.stages[start.stage]

        def located(path: Path, message: str) -> LocatedError:
            """An error at ``path`` of the stage spec, located at the stage key that sets it (if one does)."""
            own = next((k for k in sets if path[: len(split_dotted(k))] == split_dotted(k)), None)
            return LocatedError((*where, own) if own is not None else where, message)

        try:
            stage = m.Spec.model_validate(stage_data(spec, start.stage))
        except OverrideError as err:
            self.errors.append(LocatedError(where, f"the stage is not a valid spec: {err}"))
            return
        except ValidationError as err:
            for e in err.errors():
                message = f"the stage is not a valid spec: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                self.errors.append(located(tuple(e["loc"]), message))
            return
        stage_errors = semantic_errors(stage)
        for error in stage_errors:
            shown = ".".join(map(str, error.path))
            self.errors.append(located(error.path, f"in the stage, {shown}: {error.message}"))
        if stage_errors:
            return
        self.start_values(stage)

    def start_values(self, stage: m.Spec) -> None:
        """``start.at`` names a state the upstream spec ``stage`` can have (a step within its steps, one
        of its events) and each of ``start.values`` is one number on the series it records."""
        start = self.spec.start
        assert start is not None
        if isinstance(start.at, m.AtStep) and start.at.step > stage.train.steps:
            message = f"step {start.at.step} is after the upstream run's last step ({stage.train.steps})"
            self.errors.append(LocatedError(("start", "at", "step"), message))
        if isinstance(start.at, m.AtEvent) and start.at.event not in event_labels(stage):
            known = ", ".join(f"'{e}'" for e in event_labels(stage)) or "none"
            message = f"the upstream run has no event '{start.at.event}' (its events and stop rules: {known})"
            self.errors.append(LocatedError(("start", "at", "event"), message))
        checker = _Checker(stage)
        checker.cadence = _cadences(stage)
        series = series_names(stage)
        scalars = [*stage.constants, *REFERENCES.get(stage.problem.kind, ()), START_STEP]
        for name, source in start.values.items():
            path = ("start", "values", name)
            what = f"start value {name} (on the upstream run)"
            typed = checker.algebra(source, path, series, scalars, what)
            if typed is not None and typed.series:
                message = (
                    f"a start value is one number of the upstream run (e.g. `final(sharpness)`); "
                    f"`{source[:60]}` is a series"
                )
                checker.errors.append(LocatedError(path, message))
        self.errors += checker.errors

    def optimizers(self) -> list[tuple[m.Optimizer, Path]]:
        """The main optimizer and every switch target, with their key paths."""
        spec = self.spec
        return [(spec.optimizer, ("optimizer",))] + [
            (e.do.switch_optimizer, ("events", i, "do", "switch_optimizer"))
            for i, e in enumerate(spec.events)
            if e.do.switch_optimizer is not None
        ]

    def directional(self) -> None:
        """An optimizer's ``directional`` acts along the eigenpairs the ``sharpness`` measure solves: the
        spec needs one with k ≥ ``directional.k``; a ``measured`` η_u reads this step's measurements."""
        sharp = next((i for i, x in enumerate(self.spec.measure) if isinstance(x, m.SharpnessMeasure)), None)
        for opt, path in self.optimizers():
            directional = getattr(opt, "directional", None)
            if directional is None:
                continue
            where = (*path, "directional")
            if isinstance(directional.lr, m.Measured):
                self.expr(directional.lr.value, (*where, "lr", "value"), [*self.constants, *MEASURED_NAMES])
            if sharp is None:
                self.errors.append(
                    LocatedError(
                        where,
                        f"acts along the top eigenvectors the sharpness measure solves: add "
                        f"`{{kind: sharpness, k: {directional.k}, every: 1}}` (with start/stop for a window)",
                    )
                )
            elif self.spec.measure[sharp].k < directional.k:
                self.errors.append(
                    LocatedError(
                        ("measure", sharp, "k"),
                        f"{'.'.join(map(str, where))} uses the top {directional.k} eigenpairs: "
                        f"the sharpness measure needs k ≥ {directional.k}",
                    )
                )

    def measured_rates(self) -> None:
        """A ``measured`` learning rate's expression; if it reads ``sharpness``: a sharpness measure solved
        from step 0 (so S is defined at every step), and nothing the early solve cannot serve — measures
        that read η itself (``densify``, ``self_stabilization``, ``preconditioned_sharpness``) and stops
        (a run that stops records its curvature at that step, which needs the stop known before the solve)."""
        spec = self.spec
        readers = []
        for opt, path in self.optimizers():
            if isinstance(opt.lr, m.Measured):
                where = (*path, "lr", "value")
                compiled = self.expr(opt.lr.value, where, [*self.constants, *MEASURED_NAMES])
                if compiled is not None and "sharpness" in compiled.names:
                    readers.append(".".join(map(str, where)))
        if not readers:
            return
        reader = f"the learning rate {readers[0]} reads `sharpness`"
        errors: list[tuple[Path, str]] = []
        sharp = next((i for i, x in enumerate(spec.measure) if isinstance(x, m.SharpnessMeasure)), None)
        if sharp is None:
            errors.append((("measure",), f"{reader}: add a `{{kind: sharpness}}` measure (solver, cadence)"))
        elif spec.measure[sharp].start != 0:
            errors.append((("measure", sharp, "start"), f"{reader} from step 0: the measure must start at 0"))
        for i, meas in enumerate(spec.measure):
            if isinstance(meas, m.Cadence) and meas.densify is not None:
                errors.append((("measure", i, "densify"), f"{reader}: densify (on η·S) is not supported"))
            if isinstance(meas, m.SelfStabilizationMeasure | m.PreconditionedSharpnessMeasure):
                errors.append((("measure", i, "kind"), f"{meas.kind} needs a rate the spec sets; {reader}"))
            if isinstance(meas, m.GramSharpnessMeasure) and meas.recursion:
                errors.append((("measure", i, "recursion"), f"R′ needs a rate the spec sets; {reader}"))
        stops: list[Path] = [("train", "stop", i) for i in range(len(spec.train.stop))]
        stops += [("events", i, "do", "stop") for i, e in enumerate(spec.events) if e.do.stop]
        errors += [(path, f"{reader}: stop rules are not supported with it yet") for path in stops]
        self.errors += [LocatedError(path, message) for path, message in errors]

    def problem(self, problem: m.Problem) -> None:
        const = self.constants
        if isinstance(problem, SupervisedProblem):
            return  # data, network and loss fields are plain values, not expressions
        toy = as_toy(problem)
        if isinstance(problem, m.ToyProblem):
            for name, value in problem.params.items():
                self.scalars(value, ("problem", "params", name), const)
            for name, value in problem.coefficients.items():
                self.expr(value, ("problem", "coefficients", name), const, evaluate=True)
            clash = set(problem.params) & (set(problem.coefficients) | set(problem.definitions) | set(const))
            for name in sorted(clash):
                self.errors.append(
                    LocatedError(
                        ("problem", "params", name),
                        f"'{name}' is both a parameter and a coefficient/definition/constant",
                    )
                )
        else:  # every string field is a number over constants, except scalar_product's g(s) (below)
            for field in _value_fields(problem):
                if not (isinstance(problem, m.ScalarProduct) and field == "g"):
                    self.scalars(getattr(problem, field), ("problem", field), const)
        if toy is None:
            return
        # Shortcut problems expand to a toy whose own expressions are valid by construction, except
        # the user-given `g` of scalar_product; a hand-written toy is checked field by field.
        written = isinstance(problem, m.ToyProblem)
        known = [*toy.params, *toy.coefficients, *const]
        for name, source in toy.definitions.items():
            if written:
                self.expr(source, ("problem", "definitions", name), known)
            known.append(name)
        if written:
            self.expr(toy.objective, ("problem", "objective"), known)
            if not self.errors and not self.pending:
                problem_at_start = initial_objective_problem(problem, self.spec.constants)
                if problem_at_start is not None:
                    self.errors.append(LocatedError(("problem", "objective"), problem_at_start))
        elif isinstance(problem, m.ScalarProduct):
            self.expr(problem.g, ("problem", "g"), known)

    def trigger(self, trig: m.Trigger, path: Path, runtime: list[str], params: list[str]) -> None:
        if trig.sharpness is not None:
            self.expr(trig.sharpness.threshold, (*path, "sharpness", "threshold"), runtime)
        if trig.loss is not None:
            self.expr(trig.loss.below, (*path, "loss", "below"), self.constants, evaluate=True)
        if trig.accuracy is not None:
            self.expr(trig.accuracy.at_least, (*path, "accuracy", "at_least"), self.constants, evaluate=True)
            if not isinstance(self.spec.problem, SupervisedProblem):
                self.errors.append(
                    LocatedError((*path, "accuracy"), "an accuracy trigger needs a supervised problem")
                )
        if trig.expr is not None:
            self.expr(trig.expr, (*path, "expr"), [*runtime, *params, "loss", "sharpness"])

    def curvature_measures(self) -> None:
        """One measure per curvature kind; what each needs from the others and from the problem."""
        spec = self.spec
        seen: dict[str, int] = {}
        sharp = next((x for x in spec.measure if isinstance(x, m.SharpnessMeasure)), None)
        for i, meas in enumerate(spec.measure):
            if not isinstance(meas, m.CurvatureMeasure):
                continue
            where = ("measure", i)
            if meas.kind in seen:
                self.errors.append(
                    LocatedError(
                        (*where, "kind"), f"{meas.kind} is already measured (measure[{seen[meas.kind]}])"
                    )
                )
            seen.setdefault(meas.kind, i)
            if meas.stop is not None and meas.stop < meas.start:
                self.errors.append(
                    LocatedError((*where, "stop"), f"stop ({meas.stop}) is before start ({meas.start})")
                )
            if isinstance(meas, m.PreconditionedSharpnessMeasure) and (
                spec.optimizer.kind not in ("adam", "rmsprop")
                or any(e.do.switch_optimizer for e in spec.events)
            ):
                self.errors.append(
                    LocatedError(
                        (*where, "kind"),
                        "preconditioned_sharpness needs an adam or rmsprop optimizer and no optimizer switch",
                    )
                )
            if (
                isinstance(meas, m.GramSharpnessMeasure)
                and meas.recursion
                and (spec.optimizer.kind != "gd" or any(e.do.switch_optimizer for e in spec.events))
            ):
                self.errors.append(
                    LocatedError(
                        (*where, "recursion"),
                        "gram_sharpness's recursion R′(t+1) = (I − ηM(I − v₁v₁ᵀ))R′(t) follows plain GD "
                        "(optimizer kind gd, no optimizer switch)",
                    )
                )
            if isinstance(meas, m.SelfStabilizationMeasure) and spec.optimizer.kind != "gd":
                self.errors.append(
                    LocatedError((*where, "kind"), "self_stabilization follows plain GD (optimizer kind gd)")
                )
            needs_eigenvectors = m.RotationMeasure | m.SharpnessGradientMeasure | m.SelfStabilizationMeasure
            uses_solver = isinstance(meas, m.SliceMeasure) and (
                meas.sharpness or meas.direction == "eigenvector"
            )
            if (isinstance(meas, needs_eigenvectors) or uses_solver) and sharp is None:
                self.errors.append(
                    LocatedError(
                        (*where, "kind"), f"{meas.kind} needs a sharpness measure (its eigenvectors)"
                    )
                )
            if isinstance(meas, m.RotationMeasure) and sharp is not None and sharp.k < meas.k:
                self.errors.append(
                    LocatedError(
                        (*where, "k"), f"rotation of {meas.k} eigenvectors needs sharpness k ≥ {meas.k}"
                    )
                )
            if (
                isinstance(meas, m.RotationMeasure)
                and meas.at is not None
                and (meas.at < meas.start or (meas.stop is not None and meas.at > meas.stop))
            ):
                self.errors.append(
                    LocatedError((*where, "at"), "the baseline step must lie in [start, stop]")
                )
            if isinstance(meas, m.GramSharpnessMeasure) and not (
                isinstance(spec.problem, SupervisedProblem) and spec.problem.loss.kind == "mse"
            ):
                self.errors.append(
                    LocatedError((*where, "kind"), "gram_sharpness is defined for networks trained with MSE")
                )

    def measures_and_checks(self) -> None:
        spec = self.spec
        supervised = isinstance(spec.problem, SupervisedProblem)
        for i, meas in enumerate(spec.measure):
            if meas.kind in SUPERVISED_MEASURES and not supervised:
                self.errors.append(
                    LocatedError(
                        ("measure", i, "kind"), f"{meas.kind} is measured on supervised problems only"
                    )
                )
            if meas.kind == "params" and supervised:
                self.errors.append(
                    LocatedError(
                        ("measure", i, "kind"),
                        "params series are for closed-form problems; on a network measure group_norms",
                    )
                )
            if meas.kind == "test_loss" and spec.problem.kind not in HAS_TEST_LOSS:
                self.errors.append(
                    LocatedError(
                        ("measure", i, "kind"),
                        f"test_loss is defined for {', '.join(sorted(HAS_TEST_LOSS))} "
                        f"problems, not {spec.problem.kind}",
                    )
                )
        self.curvature_measures()
        scalars = [*self.constants, *REFERENCES.get(spec.problem.kind, ())]
        self.cadence = _cadences(spec)
        derived = {x.name for x in spec.measure if isinstance(x, m.DerivedMeasure)}
        series = [n for n in series_names(spec) if n not in derived]
        for i, meas in enumerate(spec.measure):
            if isinstance(meas, m.DerivedMeasure):
                typed = self.algebra(meas.expr, ("measure", i, "expr"), series, scalars, "derived")
                if typed is not None and not typed.series and uses_across(meas.expr):
                    message = (
                        f"a derived measure is a series, but `{meas.expr[:60]}` is a single number for the "
                        "run; state it in a `claim` check (or bind it with the claim's `let`)"
                    )
                    self.errors.append(LocatedError(("measure", i, "expr"), message))
                series.append(meas.name)
        known = [*scalars, *series]
        for i, check in enumerate(spec.checks):
            if isinstance(check, m.ClaimCheck):
                self.claim(check, ("checks", i), series, scalars)
                continue
            if isinstance(check, NAMED_SERIES_CHECKS):
                self.named_check(check, ("checks", i), known)
                continue
            for field in ("of", "lhs", "rhs", "below", "above"):
                self.algebra(getattr(check, field, None), ("checks", i, field), series, scalars, check.kind)
            if isinstance(check, m.Lemma6Check | m.Theorem2Check) and not isinstance(
                spec.problem, m.ReluScalar
            ):
                self.errors.append(
                    LocatedError(
                        ("checks", i, "kind"), f"{check.kind} is a theorem about the relu_scalar problem"
                    )
                )

    def algebra(
        self,
        source: Any,
        path: Path,
        series: list[str],
        scalars: list[str],
        kind: str,
        conditions: Iterable[str] = (),
    ) -> Typed | None:
        """An expression of a check or derived measure: names, operations across steps and their
        arguments (:func:`eosdsl.expr.across.check_series_expression`); its static type, or ``None`` after
        recording an error. A name some measure records but this spec does not says which measure."""
        if not isinstance(source, str):
            return None
        try:
            used = {n.id for n in ast.walk(ast.parse(source.strip(), mode="eval")) if isinstance(n, ast.Name)}
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            used = set()
        missing = sorted(n for n in used if n not in series and n not in scalars and n in RECORDED_BY)
        if missing:
            self.errors.append(LocatedError(path, _needs(kind, missing)))
            return None
        try:
            cadence = getattr(self, "cadence", {})
            return check_series_expression(source, series, scalars, conditions, cadence)[1]
        except ExprError as err:
            self.errors.append(LocatedError(path, f"{err.message}{_where(err)}"))
            return None

    def claim(self, check: m.ClaimCheck, where: Path, series: list[str], scalars: list[str]) -> None:
        """A claim: its ``let`` names in order (each a series or a single number), then ``that``, which must
        be one comparison ``lhs op rhs``."""
        series, scalars, conditions, failed = list(series), list(scalars), [], False
        for name, source in check.let.items():
            path = (*where, "let", name)
            if not name.isidentifier() or name.startswith("__"):
                self.errors.append(LocatedError(path, f"'{name}' is not a name (letters, digits, _)"))
                failed = True
                continue
            if {name} & {*series, *scalars, *FUNCTIONS, *OPERATORS, *CONSTANTS, STEP}:
                message = f"'{name}' is already a series, constant or function; choose another name"
                self.errors.append(LocatedError(path, message))
                failed = True
                continue
            typed = self.algebra(source, path, series, scalars, "claim", conditions)
            failed = failed or typed is None
            (series if typed is None or typed.series else scalars).append(name)
            if typed is not None and typed.condition:
                conditions.append(name)
        if failed:
            return  # `that` would repeat the error of the name it uses
        path = (*where, "that")
        try:
            body = ast.parse(check.that.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            self.algebra(check.that, path, series, scalars, "claim")  # reports the syntax error
            return
        ops = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
        if not (isinstance(body, ast.Compare) and len(body.ops) == 1 and type(body.ops[0]) in ops):
            message = (
                f"a claim states one comparison `lhs op rhs` with op one of {', '.join(CLAIM_OPS)}, "
                f"e.g. `fraction(alpha < 0) >= 0.5`; got `{check.that[:60]}`"
            )
            self.errors.append(LocatedError(path, message))
            return
        typed = self.algebra(check.that, path, series, scalars, "claim", conditions)
        if typed is not None:
            for side in (body.left, body.comparators[0]):
                if _is_condition_node(side):
                    text = ast.get_source_segment(check.that.strip(), side)
                    message = f"the sides of a claim are numbers; `{text}` is a condition"
                    self.errors.append(LocatedError(path, message))
                    return

    def series_expr(self, kind: str, source: str, path: Path, known: list[str]) -> None:
        """An expression over series; an unknown name that a measure records says which measure."""
        try:
            names = compile_expr(source).names
        except ExprError:
            names = frozenset()  # a syntax error: reported by `expr` below
        missing = sorted(n for n in names if n not in known and n in RECORDED_BY)
        if missing:
            self.errors.append(LocatedError(path, _needs(kind, missing)))
        else:
            self.expr(source, path, known)

    def needs_series(self, kind: str, names: list[str], path: Path, known: list[str]) -> None:
        """The check reads these series (expression names) directly: each must be recorded."""
        missing = [n for n in names if n not in known]
        if missing:
            self.errors.append(LocatedError(path, _needs(kind, missing)))

    def named_check(self, check: m.Check, where: Path, known: list[str]) -> None:
        """The EoS and paper 003/004 checks: their expressions, and the measures they read."""
        spec, kind = self.spec, (*where, "kind")
        if isinstance(check, m.EosBandCheck):
            self.series_expr(check.kind, check.of, (*where, "of"), known)
            self.series_expr(check.kind, check.threshold, (*where, "threshold"), known)
        elif isinstance(check, m.EigengapCheck):
            sharp = next((x for x in spec.measure if isinstance(x, m.SharpnessMeasure)), None)
            if sharp is None or sharp.k < 2:
                has = "" if sharp is None else f" (measure[{spec.measure.index(sharp)}] has k = {sharp.k})"
                self.errors.append(
                    LocatedError(kind, f"eigengap needs λ₂: a sharpness measure with k ≥ 2{has}")
                )
            self.series_expr(check.kind, check.eta, (*where, "eta"), known)
        elif isinstance(check, m.TracksConstrainedCheck):
            names = ["dagger_distance"] + (["ss_delta"] if check.factor is not None else [])
            self.needs_series(check.kind, names, kind, known)
        elif isinstance(check, m.PredictionCheck):
            if check.rel is not None:
                self.needs_series(check.kind, ["pred_sharpness", "sharpness"], kind, known)
                self.series_expr(check.kind, check.eta, (*where, "eta"), known)
            if check.rel_loss is not None:
                self.needs_series(check.kind, ["pred_loss", "loss"], (*where, "rel_loss"), known)
        elif isinstance(check, m.ProductChainIdentitiesCheck):
            if not isinstance(spec.problem, m.ProductChain):
                self.errors.append(
                    LocatedError(kind, f"{check.kind} is a theorem about the product_chain problem")
                )
                return
            self.needs_series(check.kind, ["theta", "sharpness"], kind, known)


def _cadences(spec: m.Spec) -> dict[str, int]:
    """Expression name → ``every`` of the series simple measures record at a fixed cadence (the smallest,
    when two measures record it); curvature and derived series have none."""
    table = recorded_series(spec)
    fixed = {r.expression for r in table if r.every == 0}
    out: dict[str, int] = {}
    for rec in table:
        if rec.expression not in fixed:
            out[rec.expression] = min(out.get(rec.expression, rec.every), rec.every)
    return out


def _is_condition_node(node: ast.AST) -> bool:
    """A comparison, ``and``/``or``/``not``, or an ``any``/``all`` of steps: a condition, not a number."""
    if isinstance(node, ast.Compare | ast.BoolOp):
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("any", "all")


NAMED_SERIES_CHECKS = (
    m.EosBandCheck
    | m.EigengapCheck
    | m.TracksConstrainedCheck
    | m.PredictionCheck
    | m.ProductChainIdentitiesCheck
)


def _recorded_by() -> dict[str, str]:
    """Expression name of a series → the measure that records it (for "add this measure" errors)."""
    table = {kind: f"`{{kind: {kind}}}`" for kind in typing.get_args(m.SimpleKind)}
    table.update({"lr_applied": "`{kind: lr}`", "theta": "`{kind: params}`"})
    table.update({f"ode_{name}": "`{kind: ode_steps}`" for name in ("substeps", "rejected", "capped")})
    curvature = [
        m.SharpnessMeasure.model_construct(kind="sharpness", k=1, vectors=True),
        m.RotationMeasure.model_construct(kind="rotation"),
        m.SharpnessGradientMeasure.model_construct(kind="sharpness_gradient"),
        m.GramSharpnessMeasure.model_construct(kind="gram_sharpness"),
        m.SelfStabilizationMeasure.model_construct(kind="self_stabilization"),
        FlowProjectionMeasure.model_construct(kind="flow_projection", params=True),
        HessianTraceMeasure.model_construct(kind="hessian_trace"),
        SpectralDensityMeasure.model_construct(kind="spectral_density"),
    ]
    for meas in curvature:
        table.update({n.replace(".", "_"): f"a `{meas.kind}` measure" for n in meas.series()})
    eigs = "a `sharpness` measure with k ≥ 2"
    table.update({"eigs": eigs, "eigs_residual": eigs})
    gram = "a `gram_sharpness` measure"
    table.update(
        {
            "gram_eigs": f"{gram} with k ≥ 2",
            "gram_eigs_residual": f"{gram} with k ≥ 2",
            "gram_min": f"{gram} with min: true",
            "gram_projections": f"{gram} with projections ≥ 1",
            **{f"gram_recursion_{x}": f"{gram} with recursion: true" for x in RECURSION_SERIES},
        }
    )
    return table


RECORDED_BY = _recorded_by()


def _needs(kind: str, missing: list[str]) -> str:
    """``eos_band needs the series lr: add `{kind: lr}` to measure``."""
    how = sorted({RECORDED_BY[n] for n in missing if n in RECORDED_BY})
    return f"{kind} needs the series {', '.join(missing)}" + (
        f": add {' and '.join(how)} to measure" if how else ""
    )


def semantic_errors(spec: m.Spec) -> list[LocatedError]:
    """Every expression and cross-reference error of a structurally valid spec (empty if none)."""
    return _Checker(spec).run()
