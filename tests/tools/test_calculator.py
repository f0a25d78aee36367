"""The calculator: correct arithmetic, hostile input refused fast, unit conversion, and the suite."""

from __future__ import annotations

import math
import pickle
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.calculator import CalculatorSuite, convert_units, evaluate
from tools.call import ToolCall


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 3 ** 2", 512),  # right-associative
        ("-2 ** 2", -4),  # power binds tighter than unary minus
        ("+5 - -3", 8),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** -1", 0.5),
        ("1e3 + 0.5", 1000.5),
        ("0x10 + 1_000", 1016),
        ("sqrt(16)", 4.0),
        ("abs(-3)", 3),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("min(3, 1, 2) + max(1, 2.5)", 3.5),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("log10(1000)", 3.0),
        ("exp(0)", 1.0),
        ("sin(0) + cos(0) + tan(0)", 1.0),
        ("floor(2.7) + ceil(2.1)", 5),
        ("2 * pi", 2 * math.pi),
        ("  (((1)))  ", 1),
        ("2 ** 3000 // 2 ** 2999", 2),  # about 900 digits: allowed
    ],
)
def test_evaluate(expression: str, expected: float) -> None:
    result = evaluate(expression)
    assert result == pytest.approx(expected, rel=1e-12)
    assert type(result) is type(expected)


HOSTILE = [
    ("__import__('os').system('x')", "attribute access ('.system') is not allowed"),
    ("__import__('os')", "function '__import__' is not allowed"),
    ("__import__", "name '__import__' is not allowed"),
    ("().__class__", "attribute access ('.__class__') is not allowed"),
    ("sqrt.__class__", "attribute access"),
    ("(lambda: 1)()", "Lambda is not allowed"),
    ("(1)(2)", "only the functions"),
    ("[1, 2]", "List is not allowed"),
    ("1 if 1 else 2", "IfExp is not allowed"),
    ("1 < 2", "Compare is not allowed"),
    ("1 << 10000", "operator LShift is not allowed"),
    ("x + 1", "name 'x' is not allowed"),
    ("'1' * 3", "'1' is not a number"),
    ("True + 1", "True is not a number"),
    ("1j", "1j is not a number"),
    ("abs(*[1])", "plain positional arguments"),
    ("round(1.5, ndigits=1)", "plain positional arguments"),
    ("1\x00+1", "cannot parse"),
    ("1 +", "cannot parse"),
    ("1if 1 else 2", "invalid decimal literal"),  # only a SyntaxWarning in Python
    ("import os", "cannot parse"),
    ("", "cannot parse"),
    ("9**9**9", "would have about 369,693,100 digits"),
    ("10**10**10", "would have about 10,000,000,000 digits"),
    ("2**10000", "would have about 3,010 digits"),
    ("10**999 * 10**999", "more than about 1,000 digits"),
    ("floor(1e308) * floor(1e308) * floor(1e308) * floor(1e308)", "more than about 1,000 digits"),
    ("10.0 ** 400", "overflows"),
    ("1e400", "not a finite number"),
    ("exp(1000)", "overflows"),
    ("10**300 / 10**-300", "not a finite number"),
    ("1 / 0", "division by zero in '1 / 0'"),
    ("1 % 0", "division by zero"),
    ("1 // 0.0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("(-8) ** (1/3)", "is not a real number"),
    ("sqrt(-1)", "'sqrt(-1)' is undefined: math domain error"),
    ("log(0)", "is undefined"),
    ("round(1.5, 10**900)", "round's digits must be an integer"),
    ("round(10, -10**900)", "round's digits must be an integer"),
    ("min()", "'min()' has the wrong number of arguments"),
    ("log(1, 2, 3)", "'log(1, 2, 3)' has the wrong number of arguments"),
    ("round(1, 2, 3)", "has the wrong number of arguments"),
    ("'1' * 100000", "'1' is not a number"),
    ("1" * 100_000, "100,000 characters long; the limit is 1,000"),
    ("(" * 10_000 + "1" + ")" * 10_000, "20,001 characters long"),
    ("(" * 400 + "1" + ")" * 400, "cannot parse"),
    ("-" * 900 + "1", "nested more than 100 levels"),
    ("1+" * 300 + "1", "nested more than 100 levels"),
]


@pytest.mark.parametrize(("expression", "message"), HOSTILE, ids=[repr(e)[:40] for e, _ in HOSTILE])
def test_hostile_expressions_are_refused_fast(expression: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError) as error:
        evaluate(expression)
    assert time.perf_counter() - start < 0.1
    assert message in str(error.value)


def test_non_string_expression() -> None:
    with pytest.raises(ValueError, match="expression must be a string, got int"):
        evaluate(3)  # type: ignore[arg-type]


def test_worst_allowed_expression_is_still_fast() -> None:
    # Near the limits everywhere: the longest product of the largest allowed integers.
    expression = "*".join(["(10**999 // 10**998)"] * 45)
    start = time.perf_counter()
    assert evaluate(expression) == 10**45
    assert time.perf_counter() - start < 0.05


def _finite_or_value_error(expression: str) -> None:
    try:
        result = evaluate(expression)
    except ValueError:
        return
    assert isinstance(result, (int, float)) and not isinstance(result, bool)
    assert isinstance(result, int) or math.isfinite(result)


@given(st.text(max_size=200))
def test_evaluate_on_any_text_returns_a_number_or_raises_value_error(expression: str) -> None:
    _finite_or_value_error(expression)


@given(st.text(alphabet="0123456789+-*/%(). e*", max_size=60))
def test_evaluate_on_arithmetic_looking_text(expression: str) -> None:
    _finite_or_value_error(expression)


@given(
    st.recursive(
        st.integers(-(10**6), 10**6).map(str) | st.floats(allow_nan=False, allow_infinity=False).map(repr),
        lambda inner: (
            st.builds(
                lambda a, op, b: f"({a}{op}{b})", inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), inner
            )
            | st.builds(lambda f, a: f"{f}({a})", st.sampled_from(["sqrt", "exp", "log", "abs", "floor"]), inner)
        ),
        max_leaves=12,
    )
)
def test_evaluate_on_random_well_formed_arithmetic(expression: str) -> None:
    _finite_or_value_error(expression)


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (1, "km", "m", 1000.0),
        (1, "in", "cm", 2.54),
        (1, "in", "mm", 25.4),  # 10 significant digits hide 25.400000000000002
        (1e-9, "km", "mm", 0.001),
        (123456789, "mm", "km", 123.456789),
        (3, "ft", "in", 36.0),
        (1, "mi", "km", 1.609344),
        (1, "yd", "ft", 3.0),
        (1, "lb", "kg", 0.45359237),
        (16, "oz", "lb", 1.0),
        (1500, "mg", "g", 1.5),
        (2, "h", "min", 120.0),
        (1, "day", "s", 86400.0),
        (1, "gal", "l", 3.785411784),
        (1, "gal", "cup", 16.0),
        (250, "ml", "l", 0.25),
        (100, "C", "F", 212.0),
        (32, "F", "C", 0.0),  # not 5.7e-14: the rounding follows the size of the scale's offset
        (33.8, "F", "C", 1.0),
        (-459.67, "F", "K", 0.0),
        (0, "C", "K", 273.15),
        (0, "K", "F", -459.67),
        (-40, "celsius", "fahrenheit", -40.0),
        (100, "F", "C", 37.7777778),  # 10 digits of 273.15: precision of the absolute scale
        (5, " Kilometers ", "MILES", 3.106855961),
        (2, "Meters", "feet", 6.561679790),
        (20, "degC", "kelvin", 293.15),
    ],
)
def test_convert_units(value: float, source: str, target: str, expected: float) -> None:
    assert convert_units(value, source, target) == expected


def test_conversion_round_trips_to_ten_significant_digits() -> None:
    for value, source, target in [(123.456, "km", "mi"), (98.6, "F", "K"), (7.5, "cup", "ml")]:
        there = convert_units(value, source, target)
        assert convert_units(there, target, source) == pytest.approx(value, rel=1e-9)
        assert len(repr(there).replace("-", "").replace(".", "").lstrip("0")) <= 10


@pytest.mark.parametrize(
    ("value", "source", "target", "message"),
    [
        (1, "kg", "m", "cannot convert 'kg' (mass) to 'm' (length); mass units are mg, g, kg, lb, oz"),
        (1, "C", "s", "temperature units are C, F, K"),
        (1, "parsec", "m", "unknown unit 'parsec'; known units are length: mm, cm, m, km, in, ft, yd, mi; mass:"),
        (1, "m", "", "unknown unit ''"),
        (float("inf"), "m", "km", "value must be a finite number"),
        (True, "m", "km", "value must be a finite number, got True"),
        (1e308, "mi", "mm", "too large to represent"),
    ],
)
def test_convert_units_errors(value: float, source: str, target: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        convert_units(value, source, target)
    assert message in str(error.value)


def test_calculator_suite() -> None:
    suite = CalculatorSuite()
    assert suite.name == "calculator"
    assert [t.name for t in suite.tools] == ["calculate", "convert_units"]
    assert "arithmetic" in suite.tools[0].description and "unit" in suite.tools[1].description
    calls = [
        ToolCall(name="calculate", parameters={"expression": "2 * (3 + 4) ** 2"}),
        ToolCall(name="convert_units", parameters={"value": 5, "from_unit": "km", "to_unit": "m"}),
        ToolCall(name="calculate", parameters={"expression": "1/0"}),
        ToolCall(name="convert_units", parameters={"value": "5", "from_unit": "km", "to_unit": "m"}),
    ]
    results = pickle.loads(pickle.dumps(suite)).call_many(calls)
    assert [(r.ok, r.content) for r in results] == [
        (True, 98),
        (True, 5000.0),
        (False, {"error": "ValueError: division by zero in '1/0'"}),
        (False, {"error": "parameter 'value' should be number, got string"}),
    ]
