"""Plain JSON values of results and statistics: the one converter the summaries use.

The run summary, the sweep's table and the disparity statistics of the report all pass
through :func:`jsonable`; what differs between them is only how a value that is not a finite
number is written (see ``nonfinite``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["Nonfinite", "jsonable"]

Nonfinite = Literal["keep", "null", "text"]


def jsonable(obj: Any, *, nonfinite: Nonfinite = "keep") -> Any:
    """``obj`` as plain Python values for :func:`json.dumps`.

    Mappings become dicts with string keys; lists, tuples and arrays become lists; a
    DataFrame becomes a list of its rows (one dict per row); numpy scalars become builtins;
    anything else that is not a string or None becomes its ``str``. Floats that are NaN or
    infinite are kept as they are with ``nonfinite="keep"`` (the run summary keeps undefined
    values undefined), written as null with ``"null"`` (for ``json.dumps(allow_nan=False)``),
    and with ``"text"`` NaN as null and ±inf as ``"inf"`` / ``"-inf"`` (the sweep's table,
    read by tools that reject NaN).
    """
    if isinstance(obj, pd.DataFrame):
        return [jsonable(row, nonfinite=nonfinite) for row in obj.to_dict(orient="records")]
    if isinstance(obj, dict):
        return {str(k): jsonable(v, nonfinite=nonfinite) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), nonfinite=nonfinite)
    if isinstance(obj, list | tuple):
        return [jsonable(v, nonfinite=nonfinite) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        if math.isfinite(value) or nonfinite == "keep":
            return value
        if nonfinite == "text" and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
