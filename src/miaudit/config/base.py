"""The one strict base of every schema model: unknown keys are errors.

A misspelt key that were silently ignored would change what is audited (``widht = 64``
would train the default width, and the report would not say so), so every table of a
config, a policy or a cohort spec rejects keys it does not define, and the message names
the key. This module imports nothing of miaudit, so any layer may build on it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FrozenStrict", "Strict"]


class Strict(BaseModel):
    """A pydantic model that rejects unknown keys (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid")


class FrozenStrict(Strict):
    """A strict model whose values cannot change once validated (release policies)."""

    model_config = ConfigDict(frozen=True)
