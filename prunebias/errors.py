"""The one exception type users see: it names the file, the key and the fix."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user-fixable problem in config, data files or inputs.

    Raised before any model runs; the message says where (file, key) and what to do.
    """

    def __init__(self, where: str, problem: str, fix: str) -> None:
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}. Fix: {fix}")
