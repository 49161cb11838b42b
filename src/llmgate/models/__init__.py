"""SQLAlchemy models, one module per concept.

Every module of this package is imported here so that Alembic and ``db.metadata`` see every
table without a hand-kept list that a new model could be forgotten from.
"""
import importlib
import pkgutil

from .base import TimestampMixin, UTCDateTime, utcnow  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
