"""The metrics of ``llmgate worker``: its multiprocess folders, and how they are read and served.

``llmgate worker`` runs prometheus_client in multiprocess mode, in a folder of its own under the
*worker metrics root* (the API's folder name + ``-worker``, see :func:`worker_metrics_root`):

    <root>/.lock            flock: exclusive while a supervisor adds or retires a folder,
                            shared while /metrics reads
    <root>/<host>-<pid>/    one per running ``llmgate worker``; its ``supervisor.lock`` is held
                            for the supervisor's life, which is how readers know it is running
    <root>/retired/         the counters and histograms of supervisors that have stopped,
                            compacted into one file per type, so totals never go backwards

The API's ``/metrics`` (``llmgate.metrics``) adds the worker root's metrics to its own
(:class:`WorkerCollector`), each sample labelled ``origin="worker"`` (a worker and an API process
restart at different times; summed into one series, either restart would look like a counter reset
of the other's counts). ``llmgate worker --metrics-bind`` serves one supervisor's folder itself
(:func:`serve_worker_metrics`).

An RQ work horse is forked for every job; with one set of files per pid the folder would grow
by a few files per job. Horses therefore write under one identity per worker process
(:func:`horse_identity`): a horse continues the counts of the one before it, and the worker
marks that identity dead after each job so its live gauges go.
"""
from __future__ import annotations

import fcntl
import glob
import hmac
import logging
import os
import re
import shutil
import socket
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, exposition, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key

log = logging.getLogger(__name__)

ORIGIN_LABEL = "origin"
ROOT_LOCK = ".lock"
_SUPERVISOR_LOCK = "supervisor.lock"
_RETIRED = "retired"
_TOTAL_TYPES = ("counter", "histogram", "summary")  # what a process leaves behind when it exits
_READ_LOCK_TIMEOUT_S = 2.0


def horse_identity(worker_pid: int) -> str:
    """The file identity shared by the work horses of one worker process (it runs one at a time)."""
    return f"horse{worker_pid}"


def use_process_identity(identity: str) -> None:
    """In a forked child (a work horse): write metrics under ``identity`` rather than the pid."""
    from . import metrics  # here, not at the top: llmgate.metrics imports this module

    metrics._identity = identity


def worker_metrics_root(instance_path: str, metrics_dir: str | None = None) -> Path:
    """Where ``llmgate worker`` keeps its metrics: beside the API's folder, named like it + ``-worker``."""
    api = (Path(metrics_dir) if metrics_dir else Path(instance_path) / "prometheus").resolve()
    return api.with_name(api.name + "-worker")


@contextmanager
def _root_locked(root: Path, *, exclusive: bool, timeout: float | None = None) -> Iterator[bool]:
    """The root's lock: exclusive (blocking) to add or retire folders; shared (up to ``timeout``) to read."""
    try:
        fd = os.open(root / ROOT_LOCK, os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY, 0o644)
    except FileNotFoundError:
        yield False
        return
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        locked = False
        while not locked:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                            | (fcntl.LOCK_NB if deadline is not None else 0))
                locked = True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
        yield locked
    finally:
        os.close(fd)


def _folders(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return []


def _is_running(folder: Path) -> bool:
    """Whether the supervisor that made ``folder`` still holds its lock. Call with the root lock held."""
    try:
        fd = os.open(folder / _SUPERVISOR_LOCK, os.O_RDONLY)
    except OSError:
        return False  # `retired`, or a folder whose supervisor is long gone
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _merge(files: list[str]) -> list[Metric]:
    """``MultiProcessCollector.merge`` of files other processes are writing. A process creates its
    file empty and sizes it a moment later; a file caught empty holds nothing yet."""
    for attempt in range(3):
        try:
            return list(multiprocess.MultiProcessCollector.merge([f for f in files if _has_data(f)]))
        except struct.error:  # caught between creation and sizing after the size check
            if attempt == 2:
                raise
            time.sleep(0.01)
    return []


def _has_data(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:
        return False


def _db_files(folder: Path, *, totals_only: bool) -> list[str]:
    files = glob.glob(os.path.join(folder, "*.db"))
    if totals_only:  # a stopped process has no live or current value; its counts still happened
        files = [f for f in files if os.path.basename(f).split("_", 1)[0] in _TOTAL_TYPES]
    return files


def _retire(root: Path, folders: list[Path]) -> None:
    """Fold the counters and histograms of ``folders`` into ``<root>/retired``, then delete them.

    Call with the root lock held exclusively, so that no reader sees the counts twice or not at all.
    """
    if not folders:
        return
    retired = root / _RETIRED
    retired.mkdir(exist_ok=True)
    sources = [f for folder in (retired, *folders) for f in _db_files(folder, totals_only=True)]
    # accumulate=False: per-bucket histogram values, as they are stored (prometheus_client's advice
    # for writing merged values back to files).
    families = list(multiprocess.MultiProcessCollector.merge([f for f in sources if _has_data(f)],
                                                             accumulate=False))
    for typ in _TOTAL_TYPES:
        samples = [(family, sample) for family in families if family.type == typ for sample in family.samples]
        if not samples:
            continue
        staging = retired / f".{typ}.staging"
        staging.unlink(missing_ok=True)
        compacted = MmapedDict(str(staging))
        try:
            for family, sample in samples:
                key = mmap_key(family.name, sample.name, list(sample.labels), list(sample.labels.values()),
                               family.documentation)
                compacted.write_value(key, sample.value, 0.0)
        finally:
            compacted.close()
        os.replace(staging, retired / f"{typ}_retired.db")
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


class WorkerMetricsFolder:
    """The multiprocess folder of one ``llmgate worker`` supervisor; its workers and their horses write there."""

    def __init__(self, root: Path, path: Path, lock_fd: int):
        self.root, self.path, self._lock_fd = root, path, lock_fd

    @classmethod
    def create(cls, root: Path) -> "WorkerMetricsFolder":
        """Retire the folders of supervisors that are gone, then make a fresh one and hold its lock."""
        root.mkdir(parents=True, exist_ok=True)
        with _root_locked(root, exclusive=True):
            _retire(root, [f for f in _folders(root) if f.name != _RETIRED and not _is_running(f)])
            base = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname() or "host") + f"-{os.getpid()}"
            path, n = root / base, 1
            while path.exists():  # another machine sharing the folder, with the same name and pid
                path, n = root / f"{base}.{n}", n + 1
            path.mkdir()
            lock_fd = os.open(path / _SUPERVISOR_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(root, path, lock_fd)

    def mark_dead(self, pid: int) -> None:
        """A worker process exited: its live gauges, and those of its last horse, leave /metrics."""
        for identity in (pid, horse_identity(pid)):
            try:
                multiprocess.mark_process_dead(identity, str(self.path))
            except OSError:
                log.warning("could not clear the metrics of worker %s", identity, exc_info=True)

    def close(self) -> None:
        """The supervisor stops: its totals move to ``retired`` (so they stay counted), the folder goes."""
        try:
            with _root_locked(self.root, exclusive=True):
                _retire(self.root, [self.path])
        finally:
            os.close(self._lock_fd)


class WorkerCollector:
    """Worker metrics, every sample labelled ``origin="worker"``.

    ``root=``: every supervisor under a worker metrics root (running ones in full, stopped ones by
    their totals) — what the API's /metrics adds. ``folder=``: one supervisor's own folder — what
    ``llmgate worker --metrics-bind`` serves.
    """

    def __init__(self, *, root: Path | None = None, folder: Path | None = None):
        self.root, self.folder = root, folder

    def collect(self) -> list[Metric]:
        if self.folder is not None:
            return _as_worker(_merge(_db_files(self.folder, totals_only=False)))
        with _root_locked(self.root, exclusive=False, timeout=_READ_LOCK_TIMEOUT_S) as locked:
            if not locked:
                if (self.root / ROOT_LOCK).exists():
                    log.warning("worker metrics left out of this scrape: %s stayed locked", self.root)
                return []
            files = [f for folder in _folders(self.root)
                     for f in _db_files(folder, totals_only=not _is_running(folder))]
            return _as_worker(_merge(files))


def _as_worker(families: Iterable[Metric]) -> list[Metric]:
    from .metrics import PROCESS_START  # here, not at the top: llmgate.metrics imports this module

    labelled = []
    for family in families:
        # A horse re-creates every value its worker holds, at 0, in its own files: a start time
        # of 0 is no process's start time.
        keep = (lambda s: s.value != 0) if family.name == PROCESS_START._name else (lambda s: True)
        family.samples = [s._replace(labels={**s.labels, ORIGIN_LABEL: "worker"}) for s in family.samples if keep(s)]
        labelled.append(family)
    return labelled


class Combined:
    """Several sources as one: families of the same name become one family (the HELP of the first)."""

    def __init__(self, *sources):
        self.sources = sources

    def collect(self) -> list[Metric]:
        families: dict[str, Metric] = {}
        for source in self.sources:
            for family in source.collect():
                mine = families.setdefault(family.name, family)
                if mine is family:
                    continue
                if mine.type == family.type:
                    mine.samples.extend(family.samples)
                else:
                    log.warning("metric %s is a %s here and a %s in workers; workers' samples left out",
                                family.name, mine.type, family.type)
        return list(families.values())


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002  (a scrape is not worth a log line)
        pass


def _bearer_required(app, token: str):
    expected = f"Bearer {token}".encode()

    def guarded(environ, start_response):
        supplied = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1")
        if hmac.compare_digest(supplied, expected):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")])
        return [b'{"message": "/metrics needs `Authorization: Bearer <LLMGATE_METRICS_TOKEN>`.", '
                b'"code": "unauthorized"}']

    return guarded


def serve_worker_metrics(host: str, port: int, folder: Path, token: str | None = None) -> WSGIServer:
    """``llmgate worker --metrics-bind``: one supervisor's folder on ``http://host:port/metrics``, from a
    daemon thread. Raises ``OSError`` when the address cannot be bound. ``server.shutdown()`` stops it."""
    registry = CollectorRegistry()
    registry.register(WorkerCollector(folder=folder))
    app = exposition.make_wsgi_app(registry)
    if token:
        app = _bearer_required(app, token)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(exposition.ThreadingWSGIServer):
        address_family = family

    server = make_server(host, port, app, Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    return server
