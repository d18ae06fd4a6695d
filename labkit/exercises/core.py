"""Exercises as data, and `check(exercise_id, answer)`: right, wrong with a hint, or not checkable.

A checker is a pure function of the learner's answer: it recomputes the expected answer from
labkit itself (a formula, a config, the tokenizer, an engine model, the linter) and never from a
figure typed in by hand, so a check stays right when the data or the model change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RIGHT, WRONG, NOT_CHECKABLE = "right", "wrong", "not-checkable"
DIFFICULTIES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class CheckResult:
    """What `check` says about one answer: `status` is "right", "wrong" or "not-checkable"."""

    exercise: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == RIGHT

    def __str__(self) -> str:
        return f"{self.exercise}: {self.status} — {self.message}"


# A checker returns (is_right, message): why an answer is right, or a hint for a wrong one.
Checker = Callable[[Any], tuple[bool, str]]


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it is, how hard, whether it needs a network, and how to check it."""

    id: str  # "03.1": lesson 03, exercise 1
    difficulty: str  # one of DIFFICULTIES
    network: bool  # True: the exercise as written needs a network (see `offline`)
    answer: str  # what to pass to `check`, in words
    checker: Checker | None = None  # None: not checkable (an open question)
    choices: dict[str, str] = field(default_factory=dict)  # for multiple-choice answers
    offline: str = ""  # the offline variant of a network exercise, which `check` checks

    def describe(self) -> str:
        """Return the exercise's card: difficulty, network, what to answer, the choices."""
        net = "needs a network" if self.network else "offline"
        lines = [f"Exercise {self.id} ({self.difficulty}, {net})", f"answer: {self.answer}"]
        if self.offline:
            lines.append(f"offline variant: {self.offline}")
        lines += [f"  {key}) {text}" for key, text in self.choices.items()]
        return "\n".join(lines)


def choice(right: str, choices: dict[str, str], why: str, hint: str) -> Checker:
    """Return a checker for a multiple-choice answer: one of `choices`' keys."""

    def check_choice(answer) -> tuple[bool, str]:
        key = str(answer).strip().lower().rstrip(")")
        if key not in choices:
            raise ValueError(f"answer one of {sorted(choices)}, got {answer!r}")
        return (True, why) if key == right else (False, hint)

    return check_choice


def number(expected: Callable[[], float], why: str, hint: str, rel_tol: float = 0.01) -> Checker:
    """Return a checker for a number, right within `rel_tol` of `expected()` (computed lazily)."""

    def check_number(answer) -> tuple[bool, str]:
        try:
            value = float(answer)
        except (TypeError, ValueError):
            raise ValueError(f"answer a number, got {answer!r}") from None
        want = expected()
        ok = abs(value - want) <= rel_tol * max(abs(want), 1.0)
        return (True, why.format(expected=want)) if ok else (False, hint)

    return check_number


def boolean(right: bool, why: str, hint: str) -> Checker:
    """Return a checker for a True/False answer."""

    def check_boolean(answer) -> tuple[bool, str]:
        if not isinstance(answer, bool):
            raise ValueError(f"answer True or False, got {answer!r}")
        return (True, why) if answer is right else (False, hint)

    return check_boolean


def multiple_choice(
    exercise_id: str,
    difficulty: str,
    question: str,
    choices: dict[str, str],
    right: str,
    why: str,
    hint: str,
    *,
    network: bool = False,
    offline: str = "",
) -> Exercise:
    """Return an exercise answered by one letter of `choices`."""
    return Exercise(
        exercise_id,
        difficulty,
        network,
        f"a letter: {question}",
        choice(right, choices, why, hint),
        choices=choices,
        offline=offline,
    )
