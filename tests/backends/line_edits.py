"""Changes to a decoded answer line (a JSON object) at a path, for the decoders' near-miss tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def set_at(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets the value at ``path`` (keys and list indexes) in a line."""
    def change(line: dict[str, Any]) -> None:
        target: Any = line
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


def drop_at(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    """A change that removes the key (or list item) at ``path`` from a line."""
    def change(line: dict[str, Any]) -> None:
        target: Any = line
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return change
