"""Steward's storage layer: schema, engines and transactions, migrations, audit chain, queries.

It imports nothing from ``agent`` or ``console``, and never ``streamlit``.
"""
