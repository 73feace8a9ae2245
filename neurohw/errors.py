"""What the command line treats as a user error (one line, exit 2) rather than a bug.

Every error class defined in a neurohw package (``CheckpointError``, ``DataFormatError``,
``NetlistError``, ``LoihiConfigError``, ``CaptureFormatError`` …), :class:`UsageError`, any
``ValueError`` and any ``OSError`` (missing file, read-only folder, full disk) is a user
error. Anything else is a bug: the CLI prints one line and asks for ``--debug``.
"""
from __future__ import annotations

#: Top-level packages of this project: an exception class defined in one of them is a
#: project error type, whoever adds it.
PROJECT_PACKAGES = ("neurohw", "snn", "optics", "distill", "calibration", "logic", "bench")


class UsageError(ValueError):
    """An argument, a config field or a value read from a file is invalid.

    ``where`` names the file, argument or field (``--steps``, ``cfg.json: epochs``); it
    starts the message.
    """

    def __init__(self, where: str, problem: str):
        self.where = str(where)
        self.problem = str(problem)
        super().__init__(f"{self.where}: {self.problem}")


def is_project_error(exc: BaseException) -> bool:
    """True when ``exc`` (or one of its base classes) is defined in a project package."""
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in PROJECT_PACKAGES:
            return True
    return False


def is_user_error(exc: BaseException) -> bool:
    """True for errors caused by the input: project errors, ``ValueError`` and ``OSError``."""
    return is_project_error(exc) or isinstance(exc, (ValueError, OSError))


def one_line(exc: BaseException) -> str:
    """The error as one line; an ``OSError`` names its file and the OS reason."""
    if isinstance(exc, OSError) and exc.strerror:
        files = [f for f in (exc.filename, exc.filename2) if f is not None]
        text = f"{' -> '.join(map(str, files))}: {exc.strerror}" if files else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
