"""Plain JSON values of the statistics (NaN as null), for the report and the summary."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def _jsonable(obj: Any) -> Any:
    """Plain Python values for json.dumps(allow_nan=False): NaN → None, numpy → builtins."""
    if isinstance(obj, pd.DataFrame):
        return [_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)
