"""Tests for the safe expression language in :mod:`eosdsl.expr`.

Oracles are hand-computed numpy values and closed forms, never snapshots.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eosdsl.expr import CONSTANTS, FUNCTIONS, Expr, ExprError, compile_expr

jax.config.update("jax_enable_x64", True)

RELU_NET = "0.5 * u**2 * v**2 * (u >= 0)"


def _uv(expr: Expr):
    """Wrap an expression of (u, v) as a function of a length-2 vector."""
    return lambda x: expr({"u": x[0], "v": x[1]})


# --------------------------------------------------------------------------------------------------
# the ReLU scalar net: values, gradients, Hessians
# --------------------------------------------------------------------------------------------------


def test_relu_net_value() -> None:
    expr = compile_expr(RELU_NET, names={"u", "v"})
    assert float(expr({"u": 3.0, "v": 2.0})) == pytest.approx(0.5 * 9 * 4)
    assert float(expr({"u": -1.0, "v": 2.0})) == 0.0


def test_relu_net_gradient() -> None:
    f = _uv(compile_expr(RELU_NET, names={"u", "v"}))
    u, v = 3.0, 2.0
    grad = jax.jit(jax.grad(f))
    np.testing.assert_allclose(grad(jnp.array([u, v])), [u * v**2, u**2 * v])
    np.testing.assert_allclose(grad(jnp.array([-1.0, 2.0])), [0.0, 0.0])


def test_relu_net_hessian_matches_closed_form() -> None:
    f = _uv(compile_expr(RELU_NET, names={"u", "v"}))
    u, v = 3.0, 2.0
    expected = np.array([[v**2, 2 * u * v], [2 * u * v, u**2]])
    hessian = jax.jit(jax.hessian(f))
    np.testing.assert_allclose(hessian(jnp.array([u, v])), expected)
    np.testing.assert_allclose(hessian(jnp.array([-1.0, 2.0])), np.zeros((2, 2)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize(
    "source", [RELU_NET, "(u >= 0) * 0.5 * u**2 * v**2", "heaviside(u) * u * v", "2 * u + 1"]
)
def test_dtype_is_preserved(dtype, source: str) -> None:
    expr = compile_expr(source)
    x = jnp.array([3.0, 2.0], dtype=dtype)
    assert _uv(expr)(x).dtype == dtype
    assert jax.jit(jax.grad(_uv(expr)))(x).dtype == dtype


def test_jit_and_vmap() -> None:
    f = _uv(compile_expr(RELU_NET))
    xs = jnp.array([[3.0, 2.0], [-1.0, 5.0], [0.5, -4.0]])
    expected = np.array([0.5 * u**2 * v**2 * (u >= 0) for u, v in np.asarray(xs)])
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(xs), expected)
    grads = jax.jit(jax.vmap(jax.grad(f)))(xs)
    np.testing.assert_allclose(grads[:, 0], [12.0, 0.0, 0.5 * 16])


# --------------------------------------------------------------------------------------------------
# the brief's example expressions against numpy
# --------------------------------------------------------------------------------------------------


def test_power_law_example() -> None:
    expr = compile_expr("((1 + ((x*y)**b - 1)**2)**(a/2) - 1) / (a*b**2)", names={"x", "y", "a", "b"})
    x, y, a, b = 1.3, 0.7, 3.0, 2.0
    expected = ((1 + ((x * y) ** b - 1) ** 2) ** (a / 2) - 1) / (a * b**2)
    assert float(expr({"x": x, "y": y, "a": a, "b": b})) == pytest.approx(expected)
    assert expr.names == frozenset({"x", "y", "a", "b"})


def test_reduction_and_ratio_examples() -> None:
    theta = np.array([1.0, -2.0, 3.0])
    assert float(compile_expr("sum(theta**2)")({"theta": theta})) == pytest.approx(14.0)
    assert float(compile_expr("sharpness / mss")({"sharpness": 4.0, "mss": 8.0})) == 0.5
    env = {"C_u": np.array([1.0, 2.0]), "C_v": np.array([3.0, 4.0]), "eta": 0.5}
    np.testing.assert_allclose(compile_expr("C_u / (1 + eta*C_v)")(env), [1 / 2.5, 2 / 3.0])


def test_grad_of_sum_of_squares() -> None:
    expr = compile_expr("sum(theta**2)")
    theta = jnp.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(jax.grad(lambda t: expr({"theta": t}))(theta), 2 * np.asarray(theta))


# --------------------------------------------------------------------------------------------------
# operators, comparisons, conditionals
# --------------------------------------------------------------------------------------------------


def test_chained_comparison() -> None:
    x = np.array([-0.5, 0.0, 0.3, 1.0, 2.0])
    out = compile_expr("0 < x < 1")({"x": x})
    assert out.dtype == jnp.bool_
    np.testing.assert_array_equal(out, (x > 0) & (x < 1))


def test_logical_operators_are_elementwise() -> None:
    env = {"x": np.array([-1.0, 0.5, 2.0])}
    np.testing.assert_array_equal(compile_expr("x > 0 and x < 1")(env), [False, True, False])
    np.testing.assert_array_equal(compile_expr("x < 0 or x > 1")(env), [True, False, True])
    np.testing.assert_array_equal(compile_expr("not x > 0")(env), [True, False, False])


def test_where_and_conditional_expression() -> None:
    u = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(compile_expr("where(u > 0, u, 0.0)")({"u": u}), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(compile_expr("u if u > 0 else -u")({"u": u}), np.abs(u))
    grad = jax.jit(jax.grad(lambda t: compile_expr("where(t > 0, t**2, 0.0)")({"t": t})))
    assert float(grad(3.0)) == 6.0
    assert float(grad(-3.0)) == 0.0


def test_arithmetic_follows_python_semantics() -> None:
    cases = {"7 // 2": 3, "-7 % 3": 2, "7 % -3": -2, "2**-1": 0.5, "1 / 4": 0.25, "2**10": 1024, "-2**2": -4}
    for source, expected in cases.items():
        assert float(compile_expr(source)({})) == expected, source


def test_boolean_literals_and_casts() -> None:
    assert float(compile_expr("True + 1")({})) == 2.0
    assert float(compile_expr("sum(x > 0)")({"x": np.array([-1.0, 1.0, 2.0])})) == 2.0
    assert float(compile_expr("-(x > 0)")({"x": 1.0})) == -1.0


def test_constants() -> None:
    assert set(CONSTANTS) == {"pi", "e", "inf"}
    assert float(compile_expr("cos(pi)")({})) == pytest.approx(-1.0)
    assert float(compile_expr("log(e)")({})) == pytest.approx(1.0)
    assert bool(compile_expr("x < inf")({"x": 1e300}))
    assert compile_expr("pi * r**2").names == frozenset({"r"})


# --------------------------------------------------------------------------------------------------
# functions
# --------------------------------------------------------------------------------------------------

_X = np.array([-1.5, -0.2, 0.0, 0.4, 2.0])
_POS = np.array([0.1, 0.5, 1.0, 3.0])

UNARY = [
    ("sqrt", _POS, np.sqrt),
    ("exp", _X, np.exp),
    ("log", _POS, np.log),
    ("log1p", _POS, np.log1p),
    ("expm1", _X, np.expm1),
    ("tanh", _X, np.tanh),
    ("sinh", _X, np.sinh),
    ("cosh", _X, np.cosh),
    ("sin", _X, np.sin),
    ("cos", _X, np.cos),
    ("arctan", _X, np.arctan),
    ("abs", _X, np.abs),
    ("sign", _X, np.sign),
    ("square", _X, np.square),
    ("relu", _X, lambda x: np.maximum(x, 0.0)),
    ("sigmoid", _X, lambda x: 1 / (1 + np.exp(-x))),
    ("softplus", _X, lambda x: np.log1p(np.exp(x))),
    ("heaviside", _X, lambda x: (x >= 0).astype(float)),
    ("sum", _X, np.sum),
    ("prod", _X, np.prod),
    ("mean", _X, np.mean),
    ("min", _X, np.min),
    ("max", _X, np.max),
    ("norm", _X, lambda x: np.sqrt(np.sum(x**2))),
    ("cumsum", _X, np.cumsum),
    ("diff", _X, np.diff),
]


@pytest.mark.parametrize(("name", "x", "reference"), UNARY, ids=[case[0] for case in UNARY])
def test_unary_functions_match_numpy(name: str, x: np.ndarray, reference) -> None:
    out = compile_expr(f"{name}(x)", names={"x"})({"x": x})
    np.testing.assert_allclose(out, reference(x), rtol=1e-12, atol=1e-12)


def test_binary_and_ternary_functions() -> None:
    a, b = np.array([1.0, 5.0, -2.0]), np.array([3.0, 4.0, -1.0])
    env = {"a": a, "b": b}
    np.testing.assert_allclose(compile_expr("min(a, b)")(env), np.minimum(a, b))
    np.testing.assert_allclose(compile_expr("max(a, b)")(env), np.maximum(a, b))
    np.testing.assert_allclose(compile_expr("minimum(a, b)")(env), np.minimum(a, b))
    np.testing.assert_allclose(compile_expr("maximum(a, b)")(env), np.maximum(a, b))
    np.testing.assert_allclose(compile_expr("clip(a, -1, 2)")(env), np.clip(a, -1, 2))
    assert float(compile_expr("dot(a, b)")(env)) == pytest.approx(float(a @ b))
    m = np.arange(6.0).reshape(2, 3)
    assert float(compile_expr("dot(m, m)")({"m": m})) == pytest.approx(float(np.sum(m * m)))


def test_norm_gradient_is_finite_at_zero() -> None:
    grad = jax.jit(jax.grad(lambda t: compile_expr("norm(t)")({"t": t})))
    np.testing.assert_array_equal(grad(jnp.zeros(3)), np.zeros(3))
    np.testing.assert_allclose(grad(jnp.array([3.0, 4.0])), [0.6, 0.8])


def test_function_whitelist_contents() -> None:
    expected = (
        "sqrt exp log log1p expm1 tanh sinh cosh sin cos arctan abs sign square relu sigmoid softplus"
        " heaviside sum prod mean min max minimum maximum where clip norm dot cumsum diff"
    )
    assert set(FUNCTIONS) == set(expected.split())
    assert all(callable(fn) and fn.__doc__ for fn in FUNCTIONS.values())


# --------------------------------------------------------------------------------------------------
# subscripts
# --------------------------------------------------------------------------------------------------


def test_subscripts_and_slices() -> None:
    theta = np.array([10.0, 11.0, 12.0, 13.0])
    env = {"theta": theta}
    assert float(compile_expr("theta[0]")(env)) == 10.0
    assert float(compile_expr("theta[-1]")(env)) == 13.0
    np.testing.assert_array_equal(compile_expr("theta[1:3]")(env), theta[1:3])
    np.testing.assert_array_equal(compile_expr("theta[::-2]")(env), theta[::-2])
    m = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(compile_expr("m[:, 0]")({"m": m}), m[:, 0])
    grad = jax.jit(jax.grad(lambda t: compile_expr("theta[0] * theta[-1]")({"theta": t})))(jnp.asarray(theta))
    np.testing.assert_allclose(grad, [13.0, 0.0, 0.0, 10.0])


def test_out_of_range_index_is_an_error_not_a_clamp() -> None:
    with pytest.raises(ExprError, match="out of range") as info:
        compile_expr("1 + theta[5]")({"theta": np.zeros(3)})
    assert info.value.offset == 4


# --------------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------------


def test_free_names_exclude_functions_and_constants() -> None:
    expr = compile_expr("exp(-eta * t) * where(x > 0, x, pi) + sum(theta[0:2])")
    assert expr.names == frozenset({"eta", "t", "x", "theta"})
    assert isinstance(expr.names, frozenset)
    assert expr.source == "exp(-eta * t) * where(x > 0, x, pi) + sum(theta[0:2])"


def test_unknown_name_did_you_mean() -> None:
    with pytest.raises(ExprError) as info:
        compile_expr("uu * v", names=["u", "v"])
    assert info.value.message == "unknown name 'uu'; did you mean 'u'? (known: u, v)"
    assert info.value.offset == 0


def test_unknown_name_list_is_truncated() -> None:
    names = [f"n{i:02d}" for i in range(20)]
    with pytest.raises(ExprError) as info:
        compile_expr("n00 + zzz", names=names)
    message = str(info.value)
    assert message.startswith("unknown name 'zzz' (known: n00, n01,")
    assert "n11" in message and "n12" not in message and "8 more" in message
    assert info.value.offset == 6


@pytest.mark.parametrize("bad", ["exp", "sum", "pi", "e"])
def test_shadowing_a_builtin_is_refused(bad: str) -> None:
    with pytest.raises(ExprError, match=f"shadows the built-in .* `{bad}`"):
        compile_expr("u + 1", names={"u", bad})


def test_missing_name_at_evaluation_is_an_expr_error() -> None:
    expr = compile_expr("u + v")
    with pytest.raises(ExprError, match="name 'v' is missing") as info:
        expr({"u": 1.0})
    assert info.value.offset == 4
    assert not isinstance(info.value, KeyError)


# --------------------------------------------------------------------------------------------------
# forbidden constructs
# --------------------------------------------------------------------------------------------------

FORBIDDEN = [
    ("1 + x.real", 4, "attribute access `x.real`"),
    ("().__class__", 0, "attribute access"),
    ("__import__('os')", 0, "unknown function '__import__'"),
    ("sum(lambda: 1)", 4, "lambda"),
    ("a + [i for i in b]", 4, "list comprehensions"),
    ("sum(i for i in b)", 3, "generator expressions"),
    ("a + {i for i in b}", 4, "set comprehensions"),
    ("foo(a)", 0, "unknown function 'foo'"),
    ("1 + exq(a)", 4, "did you mean 'exp'"),
    ("clip(x, 0, hi=1)", 11, "keyword arguments"),
    ("sum(*x)", 4, "starred"),
    ("(y := 2) + 1", 1, ":="),
    ("a is b", 2, "`is`"),
    ("a not in b", 2, "`not in`"),
    ("a & b", 2, "use `and`"),
    ("a | b", 2, "use `or`"),
    ("a ^ b", 2, "bitwise"),
    ("a << 1", 2, "bitwise"),
    ("~a", 0, "use `not`"),
    ("a @ b", 2, "use `dot(a, b)`"),
    ("theta[i]", 6, "integer literal"),
    ("theta[1.5]", 6, "integer literal"),
    ("theta[0:n]", 8, "integer literal"),
    ("'abc' + 1", 0, "string literals"),
    ("b'x'", 0, "bytes literals"),
    ("f'{x}'", 0, "f-strings"),
    ("u + (1, 2)", 4, "tuple literals"),
    ("[1, 2]", 0, "list literals"),
    ("{'a': 1}", 0, "dict literals"),
    ("None", 0, "`None` is not allowed"),
    ("2j", 0, "complex literals"),
    ("exp + 1", 0, "`exp` is a function"),
    ("x.sum()", 0, "attribute access"),
    ("__builtins__", 0, "`__`"),
    ("clip(x, 0)", 0, "clip(x, lo, hi)"),
    ("min(a, b, c)", 0, "min(x[, y])"),
    ("sqrt()", 0, "`sqrt` takes 1 argument"),
]


@pytest.mark.parametrize(("source", "offset", "fragment"), FORBIDDEN, ids=[case[0] for case in FORBIDDEN])
def test_forbidden_constructs(source: str, offset: int, fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(source)
    error = info.value
    assert fragment in error.message
    assert error.offset == offset
    assert error.source == source
    assert str(error) == error.message


def test_unicode_offsets_are_characters_not_bytes() -> None:
    with pytest.raises(ExprError) as info:
        compile_expr("η1 + η2 & b")
    assert info.value.offset == 8


def test_multiline_source_offsets() -> None:
    source = "(a +\n  b & c)"
    with pytest.raises(ExprError) as info:
        compile_expr(source)
    assert source[info.value.offset] == "&"
    assert float(compile_expr("(1 +\n 2)")({})) == 3.0


@pytest.mark.parametrize("source", ["", "   ", "\n\t "])
def test_empty_source(source: str) -> None:
    with pytest.raises(ExprError, match="empty"):
        compile_expr(source)


def test_syntax_errors_carry_the_offset() -> None:
    with pytest.raises(ExprError, match="syntax error") as info:
        compile_expr("a b")
    assert info.value.offset == 2
    with pytest.raises(ExprError, match="syntax error") as info:
        compile_expr("  a b")
    assert info.value.offset == 4
    for source in ["x = 1", "import os", "a +", "(a", "a\x00"]:
        with pytest.raises(ExprError, match="syntax error"):
            compile_expr(source)


def test_leading_whitespace_is_accepted() -> None:
    assert float(compile_expr("  1 + 2")({})) == 3.0


def test_too_long_and_too_deep() -> None:
    with pytest.raises(ExprError, match="too long"):
        compile_expr("x" + " + x" * 500)
    with pytest.raises(ExprError, match="nested too deeply"):
        compile_expr("x" + "+x" * 300)
    assert float(compile_expr("x" + "+x" * 150)({"x": 1.0})) == 151.0
    assert float(compile_expr("-" * 1999 + "1")({})) == -1.0
    for source in ["-" * 1999 + "x", "not " * 499 + "x", "(" * 250 + "x" + ")" * 250]:
        with pytest.raises(ExprError, match="nested"):
            compile_expr(source)


def test_huge_integer_literal_is_refused() -> None:
    with pytest.raises(ExprError, match="too large"):
        compile_expr("x * 100000000000000000000000")


def test_shape_mismatch_is_reported_as_expr_error() -> None:
    with pytest.raises(ExprError, match="cannot evaluate `a \\+ b`") as info:
        compile_expr("1 * (a + b)")({"a": np.zeros(2), "b": np.zeros(3)})
    assert info.value.offset == 5


# --------------------------------------------------------------------------------------------------
# the objects themselves
# --------------------------------------------------------------------------------------------------


def test_expr_equality_hash_and_error_pickling() -> None:
    assert compile_expr("u + 1") == compile_expr("u + 1")
    assert hash(compile_expr("u + 1")) == hash(compile_expr("u + 1"))
    error = ExprError("bad thing", "x.y", 0)
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.message, clone.source, clone.offset) == ("bad thing", "x.y", 0)
    assert isinstance(error, ValueError)


def test_result_is_a_jax_array() -> None:
    assert isinstance(compile_expr("1.5")({}), jax.Array)
    assert isinstance(compile_expr("u")({"u": np.ones(2)}), jax.Array)
