"""Command-line arguments checked when they are parsed, before any work starts.

Every number option takes one of the types below, which refuse what the command could not
use (a negative seed, zero threads, NaN) with argparse's one-line message and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable, Optional

#: The largest seed numpy's generators take.
MAX_SEED = 2 ** 32 - 1


class Parser(argparse.ArgumentParser):
    """argparse with negative numbers in exponent form (``--threshold -1e9``) read as values,
    not as unknown options (Python 3.11's argparse knows ``-5`` and ``-.5`` only)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _bounds(minimum, maximum) -> str:
    if maximum is None:
        return f"at least {minimum}"
    if minimum is None:
        return f"at most {maximum}"
    return f"from {minimum} to {maximum}"


def integer(minimum: Optional[int] = None, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: a whole number within [minimum, maximum]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {_bounds(minimum, maximum)}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def real(minimum: Optional[float] = None, maximum: Optional[float] = None,
         above: Optional[float] = None) -> Callable[[str], float]:
    """An argparse type: a finite number within [minimum, maximum], and > ``above`` if given."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be greater than {above:g}, got {value:g}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {_bounds(minimum, maximum)}, got {value:g}")
        return value
    parse.__name__ = "number"
    return parse


def whole_numbers(n: int, minimum: int = 1, maximum: Optional[int] = None) -> Callable[[str], tuple]:
    """An argparse type: ``n`` comma-separated whole numbers, each within [minimum, maximum]."""
    one = integer(minimum, maximum)

    def parse(text: str) -> tuple:
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated whole numbers, got {text!r}")
        return tuple(one(p) for p in parts)
    parse.__name__ = "numbers"
    return parse


def number_list(minimum: Optional[int] = None, maximum: Optional[int] = None) -> Callable[[str], tuple]:
    """An argparse type: one or more comma-separated whole numbers, each within [minimum, maximum]."""
    one = integer(minimum, maximum)

    def parse(text: str) -> tuple:
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}")
        return tuple(one(p) for p in parts)
    parse.__name__ = "numbers"
    return parse


#: The common kinds.
seed = integer(0, MAX_SEED)
count = integer(1)
threads = integer(1, 1024)
positive = real(above=0.0)
non_negative = real(minimum=0.0)
finite = real()


def add_force(parser) -> None:
    """``--force``: the one way to let a command replace files that are already there."""
    parser.add_argument("--force", action="store_true",
                        help="replace output files that already exist (inputs are never replaced)")
