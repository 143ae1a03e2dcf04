"""One progress reporter for the whole library (the library never prints).

Library code calls ``with progress(total, "what") as bar: bar.update(n)``. By default
nothing is shown; the CLI installs a tqdm-rendering reporter with :func:`set_reporter`.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> None: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


def _silent_reporter(total: int | None, desc: str):
    return contextlib.nullcontext(_Silent())


_reporter: Callable = _silent_reporter


def tqdm_reporter(total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True, leave=True)


def set_reporter(reporter: Callable | None) -> None:
    """Install ``reporter(total, desc) -> context manager yielding an object with update(n)``."""
    global _reporter
    _reporter = reporter or _silent_reporter


@contextlib.contextmanager
def progress(total: int | None, desc: str) -> Iterator[Bar]:
    with _reporter(total, desc) as bar:
        yield bar


def message(text: str) -> None:
    """A one-line status message (shown by the CLI's reporter, silent otherwise)."""
    _messages(text)


def _silent_message(text: str) -> None:
    pass


_messages: Callable[[str], None] = _silent_message


def set_message_sink(sink: Callable[[str], None] | None) -> None:
    global _messages
    _messages = sink or _silent_message
