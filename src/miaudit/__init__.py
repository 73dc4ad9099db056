"""miaudit: which patients are most exposed to membership inference, and by how much."""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "audit_frame"]


def __getattr__(name: str) -> Any:
    """``miaudit.audit_frame`` on first use: importing miaudit (or its schema) loads no torch."""
    if name == "audit_frame":
        from miaudit.api import audit_frame

        return audit_frame
    raise AttributeError(f"module 'miaudit' has no attribute {name!r}")
