"""All exercises by id, and the two calls a learner makes: `show(id)` and `check(id, answer)`."""

from __future__ import annotations

from labkit.exercises.core import NOT_CHECKABLE, RIGHT, WRONG, CheckResult, Exercise
from labkit.exercises.lessons_early import EXERCISES as EARLY
from labkit.exercises.lessons_late import EXERCISES as LATE
from labkit.exercises.lessons_server import EXERCISES as SERVER
from labkit.redact import redact

EXERCISES: dict[str, Exercise] = {e.id: e for e in (*EARLY, *LATE, *SERVER)}


def get(exercise_id: str) -> Exercise:
    """Return an exercise by id ("03.1"), with a message naming the known ids if there is none."""
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise KeyError(f"No exercise {exercise_id!r}; known: {', '.join(EXERCISES)}.") from None


def show(exercise_id: str) -> str:
    """Return what an exercise asks for, how hard it is and whether it needs a network."""
    return get(exercise_id).describe()


def check(exercise_id: str, answer, *, quiet: bool = False) -> CheckResult:
    """Say whether `answer` to exercise `exercise_id` is right; print it unless `quiet`."""
    exercise = get(exercise_id)
    if exercise.checker is None:
        message = "an open question: compare with the solution"
        result = CheckResult(exercise_id, NOT_CHECKABLE, message)
    else:
        try:
            ok, message = exercise.checker(answer)
            result = CheckResult(exercise_id, RIGHT if ok else WRONG, message)
        except (TypeError, ValueError, KeyError) as err:  # an answer of the wrong form
            message = f"cannot check this answer ({redact(str(err))}); expected {exercise.answer}"
            result = CheckResult(exercise_id, NOT_CHECKABLE, message)
    if not quiet:
        print(result)
    return result
