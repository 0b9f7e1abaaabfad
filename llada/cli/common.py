"""What every console script shares: a bad input or a failed write ends in one line on stderr, not a traceback.

`run_main(prog, main, argv)` calls `main(argv)` and turns the errors a user can cause into `prog: error: ...`
with exit status 2 (a bad argument, a missing or unusable file) or 1 (an I/O failure such as a read-only or full
disk). Any other exception is a bug and keeps its traceback. `LLADA_TRACEBACK=1` shows the traceback of every error.
"""

import os
import sys
from typing import Callable, List, Optional

BAD_INPUT = 2  # argparse's own exit status for usage errors
IO_FAILURE = 1

# OSErrors that mean "the path you gave is wrong" rather than "the machine failed to read or write"
_BAD_PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)


class CLIError(Exception):
    """An error to report as one line, `prog: error: message`, with exit status `code`."""

    def __init__(self, message: str, code: int = BAD_INPUT):
        super().__init__(message)
        self.code = code


def one_line(error: BaseException) -> str:
    """The error's message on one line (library messages often span several)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def exit_code_of(error: BaseException) -> Optional[int]:
    """2 for bad input, 1 for an I/O failure, None for an exception that is not the user's doing."""
    if isinstance(error, CLIError):
        return error.code
    if isinstance(error, (ValueError, *_BAD_PATH_ERRORS)):
        return BAD_INPUT
    if isinstance(error, OSError):
        return IO_FAILURE
    if type(error).__name__ == "SafetensorError" and "I/O error" in str(error):  # a failed write of weights
        return IO_FAILURE
    return None


def run_main(prog: str, main: Callable[[Optional[List[str]]], int], argv: Optional[List[str]] = None) -> int:
    """Runs `main(argv)`; user errors become one stderr line and exit status 2 (bad input) or 1 (I/O)."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - sorted below; anything unknown is re-raised
        code = exit_code_of(error)
        if code is None or os.environ.get("LLADA_TRACEBACK"):
            raise
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return code


__all__ = ["BAD_INPUT", "CLIError", "IO_FAILURE", "exit_code_of", "one_line", "run_main"]
