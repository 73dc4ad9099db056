"""The run directory: its layout (the names and what they mean), writing, reading, redaction.

Everything that touches a run's files goes through this package: the audit, the deployed
audit and the sweep write through :mod:`~miaudit.results.write`; the report, the gate and
``miaudit report`` read through :mod:`~miaudit.results.read`; :mod:`~miaudit.results.store`
keeps the writes atomic, owner-only and bound to the run's identity.
"""
