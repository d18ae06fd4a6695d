"""The exercises; `check("03.1", answer)`: right, wrong with a hint, or not checkable."""

from labkit.exercises.core import NOT_CHECKABLE, RIGHT, WRONG, CheckResult, Exercise
from labkit.exercises.registry import EXERCISES, check, get, show

__all__ = [
    "EXERCISES",
    "NOT_CHECKABLE",
    "RIGHT",
    "WRONG",
    "CheckResult",
    "Exercise",
    "check",
    "get",
    "show",
]
