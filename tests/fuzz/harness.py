"""Running the command line on one input the way a user would, and judging the outcome.

An outcome is bad when the exit status is not 0, 1 or 2, when stderr shows a traceback or an
internal error, or when the command runs over the time limit (a hang).
"""

from __future__ import annotations

import contextlib
import io
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from einsumcc.cli import main


class Hang(BaseException):  # not an Exception: the command line must not catch it
    pass


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"over {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass(frozen=True)
class Outcome:
    status: int | str
    stderr: str

    @property
    def bad(self) -> bool:
        return (
            self.status not in (0, 1, 2)
            or "Traceback" in self.stderr
            or "internal error" in self.stderr
        )


def run_cli(argv: Sequence[str], seconds: int = 10) -> Outcome:
    """``einsumcc ARGV`` in this process, with stdout discarded and stderr captured."""
    err = io.StringIO()
    try:
        with (
            time_limit(seconds),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(err),
        ):
            status: int | str = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code if isinstance(exc.code, int) else 2
    except Hang as exc:
        status = f"hang ({exc})"
    return Outcome(status, err.getvalue())
