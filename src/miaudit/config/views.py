"""The ``[views]`` table: which query views records are trained with and scored under.

What each view does to a record is ``miaudit.views``.
"""

from __future__ import annotations

from typing import Any

import pydantic

from miaudit.config.base import Strict

__all__ = ["ViewSpec", "without_default_views"]


class ViewSpec(Strict):
    """Which query views to use (the ``[views]`` table of a config; unknown keys rejected)."""

    flip: bool = pydantic.Field(False, description="images: add the horizontal mirror")
    shift: int = pydantic.Field(
        0, ge=0, description="pixels (images, both axes) or samples (signals) to translate by"
    )


def without_default_views(data: dict[str, Any]) -> dict[str, Any]:
    """A config's dump without its ``views`` entry where that holds the defaults.

    ``[views]`` came after the first runs: leaving it out at its defaults keeps what a
    config that does not set it hashes to (and a deployed run's ``config.toml``) unchanged.
    """
    if data.get("views") == ViewSpec().model_dump(mode="json"):
        return {k: v for k, v in data.items() if k != "views"}
    return data
