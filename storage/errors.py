"""Errors raised by the storage layer.

::

    StorageError
    ├── DatabaseConfigError      STEWARD_DATABASE_URL is malformed or names an unsupported driver
    ├── DatabaseUnavailableError the database named by the URL cannot be reached or opened
    └── SchemaOutOfDateError     the database is not at the schema head; run ``steward db upgrade``

Each carries a one-line, user-facing message: the CLI prints ``str(error)`` and exits 2.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error the storage layer raises on purpose."""


class DatabaseConfigError(StorageError):
    """STEWARD_DATABASE_URL is malformed or names an unsupported database."""


class DatabaseUnavailableError(StorageError):
    """The database the URL names cannot be reached or opened."""


class SchemaOutOfDateError(StorageError):
    """The database is not at the schema head; run ``steward db upgrade``."""
