"""The ``[views]`` table: which query views records are trained with and scored under.

What each view does to a record is ``miaudit.views``.
"""

from __future__ import annotations

import pydantic

from miaudit.config.base import Strict

__all__ = ["ViewSpec"]


class ViewSpec(Strict):
    """Which query views to use (the ``[views]`` table of a config; unknown keys rejected)."""

    flip: bool = pydantic.Field(False, description="images: add the horizontal mirror")
    shift: int = pydantic.Field(
        0, ge=0, description="pixels (images, both axes) or samples (signals) to translate by"
    )
