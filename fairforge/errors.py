"""Error types that carry where a problem is, so a user can fix the input without reading code."""

from __future__ import annotations


class FairforgeError(Exception):
    """Base of every error fairforge raises on purpose (bad input, bad config, missing model)."""


class ConfigError(FairforgeError, ValueError):
    """A config value is wrong; the message starts with its key path (`train.optimizer.rho: ...`)."""


class ManifestError(FairforgeError, ValueError):
    """A manifest or an input table is wrong; the message names the file, the row and the column."""

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None) -> None:
        self.file = file
        self.row = row
        self.column = column
        where = file
        if row is not None:
            where += f" row {row}"
        if column is not None:
            where += f" column {column!r}"
        super().__init__(f"{where}: {message}")


class MissingModelError(FairforgeError, FileNotFoundError):
    """A model file or pack the config names is not there; the message says where to get it."""
