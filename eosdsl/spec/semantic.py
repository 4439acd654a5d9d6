"""Cross-reference checks pydantic cannot do: every expression parses and uses only names in scope.

Scopes, by where an expression appears:

- numbers of the problem, optimizer and schedules: the spec's ``constants``;
- the toy objective: its parameters, ``coefficients``, earlier ``definitions`` and constants;
- event thresholds: constants and ``mss``, ``lr``, ``lr_applied``, ``step``;
- ``expr`` triggers: those plus the parameters, ``loss`` and ``sharpness``;
- derived measures and checks: the recorded series (by expression name), references, constants.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any

from eosdsl.expr import ExprError, compile_expr
from eosdsl.problems import supervised
from eosdsl.problems.toy import as_toy
from eosdsl.spec import models as m
from eosdsl.spec.errors import LocatedError
from eosdsl.spec.networks import SupervisedProblem

Path = tuple[str | int, ...]

RUNTIME_NAMES = ("mss", "lr", "lr_applied", "step")
REFERENCES = {"ldn_regression": ("test_loss_min_l1", "test_loss_min_l2")}
HAS_TEST_LOSS = frozenset({"ldn_regression", "supervised"})
SUPERVISED_MEASURES = frozenset({"accuracy", "test_accuracy", "group_norms", "dead_units", "residual"})


def param_names(problem: m.Problem) -> list[str]:
    """Names of the problem's parameters (as expressions see them)."""
    toy = as_toy(problem)
    if toy is not None:
        return list(toy.params)
    if isinstance(problem, m.LdnRegression):
        return ["u", "v"]
    return []


def series_names(spec: m.Spec) -> list[str]:
    """Expression names of the series a run of ``spec`` records (derived ones included)."""
    names: list[str] = []
    for meas in spec.measure:
        if isinstance(meas, m.DerivedMeasure):
            names.append(meas.name)
        elif meas.kind == "params":
            names += param_names(spec.problem)
        elif meas.kind == "lr":
            names += ["lr", "lr_applied"]
        elif isinstance(meas, m.CurvatureMeasure):
            names += [n.replace(".", "_") for n in meas.series()]
        elif meas.kind in SUPERVISED_MEASURES and isinstance(spec.problem, SupervisedProblem):
            config = spec.problem.model.model_dump()
            groups = supervised.group_names(spec.problem.model)
            names += [n.replace(".", "_") for n in supervised.series_names(meas.kind, config, groups)]
        else:
            names.append(meas.kind)
    return names


class _Checker:
    def __init__(self, spec: m.Spec) -> None:
        self.spec = spec
        self.errors: list[LocatedError] = []
        self.constants = list(spec.constants)

    def expr(self, source: Any, path: Path, names: Iterable[str]) -> None:
        if not isinstance(source, str):
            return
        try:
            compile_expr(source, names=list(names))
        except ExprError as err:
            where = f" (at column {err.offset + 1} of the expression)" if err.offset is not None else ""
            self.errors.append(LocatedError(path, f"{err.message}{where}"))

    def scalars(self, model: Any, path: Path, names: Iterable[str]) -> None:
        """Every string in a numeric field of ``model`` (recursively) is an expression over ``names``."""
        names = list(names)
        if isinstance(model, m.Model):
            for field in type(model).model_fields:
                self.scalars(getattr(model, field), (*path, field), names)
        elif isinstance(model, list):
            for i, item in enumerate(model):
                self.scalars(item, (*path, i), names)
        elif isinstance(model, str) and path and path[-1] not in {"kind", "lr_convention", "form"}:
            self.expr(model, path, names)

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
        return self.errors

    def problem(self, problem: m.Problem) -> None:
        const = self.constants
        if isinstance(problem, SupervisedProblem):
            return  # data, network and loss fields are plain values, not expressions
        toy = as_toy(problem)
        if isinstance(problem, m.ToyProblem):
            for name, value in problem.params.items():
                self.scalars(value, ("problem", "params", name), const)
            for name, value in problem.coefficients.items():
                self.expr(value, ("problem", "coefficients", name), const)
            clash = set(problem.params) & (set(problem.coefficients) | set(problem.definitions) | set(const))
            for name in sorted(clash):
                self.errors.append(
                    LocatedError(
                        ("problem", "params", name),
                        f"'{name}' is both a parameter and a coefficient/definition/constant",
                    )
                )
        else:
            self.scalars(problem, ("problem",), const)
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
        elif isinstance(problem, m.ScalarProduct):
            self.expr(problem.g, ("problem", "g"), known)

    def trigger(self, trig: m.Trigger, path: Path, runtime: list[str], params: list[str]) -> None:
        if trig.sharpness is not None:
            self.expr(trig.sharpness.threshold, (*path, "sharpness", "threshold"), runtime)
        if trig.loss is not None:
            self.expr(trig.loss.below, (*path, "loss", "below"), self.constants)
        if trig.accuracy is not None:
            self.expr(trig.accuracy.at_least, (*path, "accuracy", "at_least"), self.constants)
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
        known = [*self.constants, *REFERENCES.get(spec.problem.kind, ())]
        recorded = [
            n
            for n in series_names(spec)
            if n not in {x.name for x in spec.measure if isinstance(x, m.DerivedMeasure)}
        ]
        known += recorded
        for i, meas in enumerate(spec.measure):
            if isinstance(meas, m.DerivedMeasure):
                self.expr(meas.expr, ("measure", i, "expr"), known)
                known.append(meas.name)
        for i, check in enumerate(spec.checks):
            if isinstance(check, NAMED_SERIES_CHECKS):
                self.named_check(check, ("checks", i), known)
                continue
            for field in ("of", "lhs", "rhs", "below", "above"):
                self.expr(getattr(check, field, None), ("checks", i, field), known)
            if isinstance(check, m.Lemma6Check | m.Theorem2Check) and not isinstance(
                spec.problem, m.ReluScalar
            ):
                self.errors.append(
                    LocatedError(
                        ("checks", i, "kind"), f"{check.kind} is a theorem about the relu_scalar problem"
                    )
                )

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
    curvature = [
        m.SharpnessMeasure.model_construct(kind="sharpness", k=1, vectors=True),
        m.RotationMeasure.model_construct(kind="rotation"),
        m.SharpnessGradientMeasure.model_construct(kind="sharpness_gradient"),
        m.GramSharpnessMeasure.model_construct(kind="gram_sharpness"),
        m.SelfStabilizationMeasure.model_construct(kind="self_stabilization"),
    ]
    for meas in curvature:
        table.update({n.replace(".", "_"): f"a `{meas.kind}` measure" for n in meas.series()})
    eigs = "a `sharpness` measure with k ≥ 2"
    table.update({"eigs": eigs, "eigs_residual": eigs})
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
