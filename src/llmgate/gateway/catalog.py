"""The model catalog: the deployments of models.yaml, their long-lived providers, and hot reload.

A ``Catalog`` is immutable; a reload builds a new one and swaps it in one assignment, so a
request keeps the deployments and providers it started with. Providers of unchanged
deployments move over to the new catalog (their connection pools stay warm). The file is
re-read when ``SIGHUP`` arrives or its modification time changes (checked at most once per
``GATEWAY_RELOAD_CHECK_S``); an invalid new file is logged and the old catalog kept.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

from flask import Flask, current_app

from llmgate.gateway.models_file import ModelsFile, ModelsFileError, read
from llmgate.providers.base import Deployment, Price, Provider
from llmgate.providers.errors import AuthenticationError
from llmgate.providers.registry import build_provider

log = logging.getLogger(__name__)

EXTENSION_KEY = "llmgate.catalog"


class MissingCredentials(AuthenticationError):
    """llmgate itself has no key for this deployment: a server configuration problem, never the
    caller's, so it answers 503 (the caller's key is fine) and the router moves on to other
    deployments and fallbacks."""

    default_status = 503


class Catalog:
    def __init__(self, models: ModelsFile, *, source: str, previous: Catalog | None = None) -> None:
        self.source = source
        self.loaded_at = int(time.time())  # the "created" of every model in GET /v1/models
        self.missing_keys: Mapping[str, str] = dict(models.missing_keys)
        self._pools: dict[str, tuple[Deployment, ...]] = {}
        for deployment in models.deployments:
            self._pools[deployment.name] = self._pools.get(deployment.name, ()) + (deployment,)
        self._providers: dict[Deployment, Provider] = {}
        self._lock = threading.Lock()
        if previous is not None:
            # Same Deployment value (every field, the resolved key included) → same provider.
            wanted = set(models.deployments)
            self._providers = {d: p for d, p in previous._providers.items() if d in wanted}

    @classmethod
    def empty(cls, source: str = "") -> Catalog:
        return cls(ModelsFile(()), source=source)

    def names(self) -> list[str]:
        return list(self._pools)

    def __contains__(self, name: object) -> bool:
        return name in self._pools

    def __len__(self) -> int:
        return len(self._pools)

    def deployments(self, name: str | None = None) -> tuple[Deployment, ...]:
        """The pool serving ``name`` (empty when unknown), or every deployment when ``name`` is None."""
        if name is None:
            return tuple(d for pool in self._pools.values() for d in pool)
        return self._pools.get(name, ())

    def price(self, name: str) -> Price | None:
        """The price of a model (its first deployment's; accounting prices each call by its own deployment)."""
        pool = self._pools.get(name)
        return pool[0].price if pool else None

    def fallbacks(self, name: str) -> tuple[str, ...]:
        pool = self._pools.get(name)
        return pool[0].fallbacks if pool else ()

    def provider(self, deployment: Deployment) -> Provider:
        """The deployment's long-lived provider, built on first use (never per request)."""
        provider = self._providers.get(deployment)
        if provider is not None:
            return provider
        variable = self.missing_keys.get(deployment.id)
        if variable:
            raise MissingCredentials(
                f"model {deployment.name!r} is not usable: the llmgate server has no API key for it "
                f"(environment variable {variable} is not set)")
        with self._lock:
            provider = self._providers.get(deployment)
            if provider is None:
                try:
                    provider = build_provider(deployment)
                except Exception as err:  # the SDK refuses to build a client without a key
                    raise MissingCredentials(
                        f"model {deployment.name!r} is not usable: its provider client cannot be built "
                        f"({type(err).__name__}: {err})") from err
                self._providers[deployment] = provider
        return provider

    def build_providers(self) -> list[str]:
        """Build every usable deployment's provider now (imports its SDK, prepares its requests),
        so the first request a process serves is as fast as the rest; the ids that failed."""
        failed = []
        for deployment in self.deployments():
            if deployment.id in self.missing_keys:
                continue
            try:
                self.provider(deployment)
            except Exception:
                log.warning("could not build the provider of %s", deployment.id, exc_info=True)
                failed.append(deployment.id)
        return failed


class CatalogHolder:
    """Holds the current catalog of one app, and swaps in a new one when models.yaml changes."""

    def __init__(self, path: str, *, check_interval_s: float = 1.0) -> None:
        self.path = path
        self.check_interval_s = check_interval_s
        self._reload_requested = False
        self._next_check = 0.0
        self._stamp = self._file_stamp()
        self._lock = threading.Lock()
        self.catalog = self._load_initial()

    def get(self) -> Catalog:
        now = time.monotonic()
        if now >= self._next_check or self._reload_requested:
            self._next_check = now + self.check_interval_s
            self._maybe_reload()
        return self.catalog

    def request_reload(self) -> None:
        """Called from the SIGHUP handler: only set a flag, the next request reloads."""
        self._reload_requested = True

    def reload(self) -> bool:
        """Re-read the file now; True when a new catalog was swapped in."""
        with self._lock:
            self._reload_requested = False
            self._stamp = self._file_stamp()
            if self._stamp is None:
                log.warning("models file %s is gone; keeping the %d models already loaded",
                            self.path, len(self.catalog), extra={"models_file": self.path})
                return False
            try:
                models = read(self.path)
            except ModelsFileError as err:
                log.error("models file %s is invalid, keeping the previous catalog: %s", self.path,
                          "; ".join(err.problems), extra={"models_file": self.path, "problems": err.problems})
                return False
            self.catalog = Catalog(models, source=self.path, previous=self.catalog)
            _warn_missing_keys(self.catalog)
            log.info("models file %s reloaded: %d models", self.path, len(self.catalog),
                     extra={"models_file": self.path, "models": self.catalog.names()})
            return True

    def _maybe_reload(self) -> None:
        if self._reload_requested or self._file_stamp() != self._stamp:
            self.reload()

    def _file_stamp(self) -> tuple[float, int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size, stat.st_ino)

    def _load_initial(self) -> Catalog:
        if self._stamp is None:
            log.warning("models file %s not found: starting with no models (GET /v1/models lists none)",
                        self.path, extra={"models_file": self.path})
            return Catalog.empty(self.path)
        # An invalid file at startup is fatal: better not to start than to serve the wrong models.
        catalog = Catalog(read(self.path), source=self.path)
        _warn_missing_keys(catalog)
        return catalog


def _warn_missing_keys(catalog: Catalog) -> None:
    for deployment_id, variable in catalog.missing_keys.items():
        log.warning("deployment %s: environment variable %s is not set; calls to it will fail until it is",
                    deployment_id, variable, extra={"deployment": deployment_id, "variable": variable})


# --- SIGHUP: one handler per process, reloading every live holder ----------------------------

_holders: weakref.WeakSet[CatalogHolder] = weakref.WeakSet()
_sighup_installed = False


def _on_sighup(signum: int, frame: object) -> None:
    for holder in list(_holders):
        holder.request_reload()


def _install_sighup(holder: CatalogHolder) -> None:
    global _sighup_installed
    _holders.add(holder)
    if _sighup_installed or not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return
    # Only take SIGHUP when nobody else does (a gunicorn master keeps its own handler; its workers
    # and the dev server have the default one, which would just kill the process).
    if signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGHUP, _on_sighup)
        _sighup_installed = True


# --- app wiring ---------------------------------------------------------------------------------

def init_app(app: Flask) -> None:
    path = str(Path(app.config.get("MODELS_FILE") or "models.yaml"))
    holder = CatalogHolder(path, check_interval_s=float(app.config.get("GATEWAY_RELOAD_CHECK_S", 1.0)))
    app.extensions[EXTENSION_KEY] = holder
    _install_sighup(holder)


def get_holder(app: Flask | None = None) -> CatalogHolder:
    return (app or current_app).extensions[EXTENSION_KEY]


def get_catalog(app: Flask | None = None) -> Catalog:
    """The current catalog of ``app`` (default: the current app); cheap enough for every request."""
    return get_holder(app).get()


def load_file(path: str, *, previous: Catalog | None = None) -> Catalog:
    """A catalog straight from a file (the CLI's ``models check``), raising ``ModelsFileError``."""
    return Catalog(read(path), source=path, previous=previous)

