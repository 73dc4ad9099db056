"""miaudit: which patients are most exposed to membership inference, and by how much."""

__version__ = "0.1.0"
