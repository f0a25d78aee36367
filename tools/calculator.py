"""The calculator suite: a safe arithmetic evaluator and a unit converter, offered as the tools
`calculate` and `convert_units`.

`evaluate` never runs code: it parses with `ast` and walks an allow-list of nodes. Every input that
could hang or exhaust memory (huge powers, deep nesting, long strings) is refused with a ValueError
before any work is done, and results stay finite JSON numbers.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Callable
from typing import Any, cast

from tools.suite import ToolSuite
from tools.tool import tool

MAX_EXPRESSION_CHARS = 1_000
# Depth of the syntax tree; also bounds the evaluator's recursion well inside Python's limit.
MAX_NESTING = 100
# About 1,000 decimal digits; keeps every integer cheap to multiply and to print.
MAX_INT_BITS = 3_322
# Digits for round(x, n): more than a float holds, few enough that 10**n stays cheap.
MAX_ROUND_DIGITS = 100
# Significant digits of convert_units results: hides float noise (2.5399999999999996 -> 2.54)
# while keeping more precision than any answer needs.
SIGNIFICANT_DIGITS = 10

Number = int | float

_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _round(x: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(x)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise ValueError(f"round's digits must be an integer from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    return round(x, ndigits)


_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}

_ALLOWED = (
    "numbers, + - * / // % **, parentheses, the functions "
    + ", ".join(_FUNCTIONS)
    + " and the constants "
    + ", ".join(_CONSTANTS)
)


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression such as `2 * (3 + 4) ** 2` or `sqrt(2) / 3`.

    Args:
        expression: Numbers, + - * / // % ** and parentheses, the functions sqrt, abs, round, min, max,
            log, log10, exp, sin, cos, tan, floor, ceil, and the constants pi and e.
    """
    if not isinstance(expression, str):
        raise ValueError(f"expression must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression is {len(expression):,} characters long; the limit is {MAX_EXPRESSION_CHARS:,}")
    try:
        # Python only warns about some malformed input ("1abc"); make it an error, and keep stderr clean.
        with warnings.catch_warnings():
            warnings.simplefilter("error", SyntaxWarning)
            # compile() with the AST flag is ast.parse minus its Python wrapper (a third of the time).
            tree = cast(ast.Expression, compile(expression.strip(), "<expression>", "eval", ast.PyCF_ONLY_AST))
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc) or type(exc).__name__
        raise ValueError(f"cannot parse {_quote(expression)} as arithmetic: {reason}") from None
    try:
        return _eval(tree.body, 1)
    except ZeroDivisionError:
        raise ValueError(f"division by zero in {_quote(expression)}") from None
    except OverflowError:
        raise ValueError(f"{_quote(expression)} overflows: the result is too large for a number") from None


def _quote(expression: str) -> str:
    return repr(expression if len(expression) <= 60 else expression[:57] + "...")


def _eval(node: ast.AST, depth: int) -> Number:
    if depth > MAX_NESTING:
        raise ValueError(f"expression is nested more than {MAX_NESTING} levels deep")
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{value!r} is not a number; only {_ALLOWED} are allowed")
        return _checked(value)
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ValueError(f"name {node.id!r} is not allowed; use {_ALLOWED}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _eval(node.operand, depth + 1)
        return operand if isinstance(node.op, ast.UAdd) else -operand
    if isinstance(node, ast.BinOp):
        left = _eval(node.left, depth + 1)
        right = _eval(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _checked(_power(left, right))
        apply = _BINARY.get(type(node.op))
        if apply is None:
            raise ValueError(f"operator {type(node.op).__name__} is not allowed; use {_ALLOWED}")
        return _checked(apply(left, right))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _eval(node.func, depth + 1)  # raises, naming what is called (an attribute, a lambda...)
            raise ValueError(f"only the functions {', '.join(_FUNCTIONS)} can be called")
        function = _FUNCTIONS.get(node.func.id)
        if function is None:
            raise ValueError(f"function {node.func.id!r} is not allowed; use {_ALLOWED}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ValueError("functions take plain positional arguments, e.g. round(2.5, 1)")
        args = [_eval(arg, depth + 1) for arg in node.args]
        try:
            result = function(*args)
        except ValueError as exc:  # math's "math domain error" does not say which call failed
            raise ValueError(f"{_quote(_call_text(node.func.id, args))} is undefined: {exc}") from None
        except TypeError:  # with numbers for arguments, only a wrong argument count gets here
            raise ValueError(
                f"{_quote(_call_text(node.func.id, args))} has the wrong number of arguments; "
                "e.g. sqrt(2), log(8, 2), round(2.567, 2), min(1, 2, 3)"
            ) from None
        return _checked(result)
    if isinstance(node, ast.Attribute):
        raise ValueError(f"attribute access ('.{node.attr}') is not allowed; use {_ALLOWED}")
    raise ValueError(f"{type(node).__name__} is not allowed in a calculator expression; use {_ALLOWED}")


def _call_text(name: str, args: list[Number]) -> str:
    return f"{name}({', '.join(map(repr, args))})"


def _power(base: Number, exponent: Number) -> Number:
    # Integer powers are exact and can be astronomically large: refuse before computing, not after.
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        digits = exponent * math.log10(abs(base))
        if digits > MAX_INT_BITS * math.log10(2):
            raise ValueError(
                f"{base}**{exponent} would have about {digits:,.0f} digits; results are limited to about "
                f"{MAX_INT_BITS * math.log10(2):,.0f} digits"
            )
    result = base**exponent
    if isinstance(result, complex):
        raise ValueError(f"{base}**{exponent} is not a real number")
    return result


def _checked(value: Number) -> Number:
    """Refuse results that are not finite or too large, so every later step stays cheap."""
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            digits = MAX_INT_BITS * math.log10(2)
            raise ValueError(f"an intermediate result has more than about {digits:,.0f} digits")
    elif not math.isfinite(value):
        raise ValueError("the result is not a finite number (overflow)")
    return value


# Each unit: (dimension, scale, offset), where value_in_base_unit = (value + offset) * scale.
# Base units are metre, kilogram, second, litre and kelvin; only temperatures have an offset.
_UNITS: dict[str, tuple[str, float, float]] = {
    "mm": ("length", 0.001, 0.0),
    "cm": ("length", 0.01, 0.0),
    "m": ("length", 1.0, 0.0),
    "km": ("length", 1000.0, 0.0),
    "in": ("length", 0.0254, 0.0),
    "ft": ("length", 0.3048, 0.0),
    "yd": ("length", 0.9144, 0.0),
    "mi": ("length", 1609.344, 0.0),
    "mg": ("mass", 1e-6, 0.0),
    "g": ("mass", 0.001, 0.0),
    "kg": ("mass", 1.0, 0.0),
    "lb": ("mass", 0.45359237, 0.0),
    "oz": ("mass", 0.45359237 / 16, 0.0),
    "s": ("time", 1.0, 0.0),
    "min": ("time", 60.0, 0.0),
    "h": ("time", 3600.0, 0.0),
    "day": ("time", 86400.0, 0.0),
    "ml": ("volume", 0.001, 0.0),
    "l": ("volume", 1.0, 0.0),
    "gal": ("volume", 3.785411784, 0.0),  # US gallon
    "cup": ("volume", 3.785411784 / 16, 0.0),  # US cup
    "c": ("temperature", 1.0, 273.15),
    "f": ("temperature", 5 / 9, 459.67),
    "k": ("temperature", 1.0, 0.0),
}

_ALIASES = {
    **{name: "mm" for name in ("millimeter", "millimeters", "millimetre", "millimetres")},
    **{name: "cm" for name in ("centimeter", "centimeters", "centimetre", "centimetres")},
    **{name: "m" for name in ("meter", "meters", "metre", "metres")},
    **{name: "km" for name in ("kilometer", "kilometers", "kilometre", "kilometres")},
    **{name: "in" for name in ("inch", "inches")},
    **{name: "ft" for name in ("foot", "feet")},
    **{name: "yd" for name in ("yard", "yards")},
    **{name: "mi" for name in ("mile", "miles")},
    **{name: "mg" for name in ("milligram", "milligrams")},
    **{name: "g" for name in ("gram", "grams")},
    **{name: "kg" for name in ("kilogram", "kilograms", "kilo", "kilos")},
    **{name: "lb" for name in ("lbs", "pound", "pounds")},
    **{name: "oz" for name in ("ounce", "ounces")},
    **{name: "s" for name in ("sec", "secs", "second", "seconds")},
    **{name: "min" for name in ("mins", "minute", "minutes")},
    **{name: "h" for name in ("hr", "hrs", "hour", "hours")},
    **{name: "day" for name in ("days", "d")},
    **{name: "ml" for name in ("milliliter", "milliliters", "millilitre", "millilitres")},
    **{name: "l" for name in ("liter", "liters", "litre", "litres")},
    **{name: "gal" for name in ("gallon", "gallons")},
    **{name: "cup" for name in ("cups",)},
    **{name: "c" for name in ("celsius", "°c", "degc")},
    **{name: "f" for name in ("fahrenheit", "°f", "degf")},
    **{name: "k" for name in ("kelvin", "kelvins")},
}


def _unit(name: str) -> tuple[str, tuple[str, float, float]]:
    key = name.strip().lower() if isinstance(name, str) else ""
    key = _ALIASES.get(key, key)
    if key not in _UNITS:
        known = "; ".join(f"{dimension}: {', '.join(_units_of(dimension))}" for dimension in _dimensions())
        raise ValueError(f"unknown unit {name!r}; known units are {known}")
    return key, _UNITS[key]


def _dimensions() -> list[str]:
    return list(dict.fromkeys(dimension for dimension, _, _ in _UNITS.values()))


def _units_of(dimension: str) -> list[str]:
    # Temperatures are shown as people write them: C, F, K.
    units = [unit for unit, (unit_dimension, _, _) in _UNITS.items() if unit_dimension == dimension]
    return [unit.upper() for unit in units] if dimension == "temperature" else units


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a value between units of length, mass, time, volume or temperature, e.g. 5 km to mi.

    Args:
        value: The amount to convert.
        from_unit: Unit of `value`: mm, cm, m, km, in, ft, yd, mi; mg, g, kg, lb, oz; s, min, h, day;
            ml, l, gal, cup (US); C, F, K. Full names such as "meters" or "celsius" also work.
        to_unit: Unit to convert to, from the same group as `from_unit`.
    """
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an integer past the largest float (its repr may be too long to print)
        digits = int((int(value).bit_length() - 1) * math.log10(2)) + 1
        raise ValueError(
            f"value must be a finite number up to 1.8e308, got an integer of about {digits:,} digits"
        ) from None
    if not finite:
        raise ValueError(f"value must be a finite number, got {value!r}")
    _, (source_dimension, source_scale, source_offset) = _unit(from_unit)
    _, (target_dimension, target_scale, target_offset) = _unit(to_unit)
    if source_dimension != target_dimension:
        raise ValueError(
            f"cannot convert {from_unit!r} ({source_dimension}) to {to_unit!r} ({target_dimension}); "
            f"{source_dimension} units are {', '.join(_units_of(source_dimension))}"
        )
    converted = (value + source_offset) * source_scale / target_scale - target_offset
    if not math.isfinite(converted):
        raise ValueError(f"{value!r} {from_unit} in {to_unit} is too large to represent")
    # Temperatures go through kelvin, so their noise scales with the offset (32 F is 5.7e-14 C before
    # rounding): count the significant digits from the larger of the result and the offset.
    magnitude = max(abs(converted), target_offset)
    if magnitude == 0:
        return 0.0
    decimals = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(magnitude))
    return round(converted, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


CALCULATE = tool(evaluate, name="calculate")
CONVERT_UNITS = tool(convert_units)


class CalculatorSuite(ToolSuite):
    """The `calculate` and `convert_units` tools; stateless.

    Both tools bound their own work (see the limits above), so by default they run in the calling
    thread without a timeout, which keeps a call to a few microseconds.
    """

    def __init__(self, timeout_s: float | None = None) -> None:
        super().__init__("calculator", [CALCULATE, CONVERT_UNITS], timeout_s)
