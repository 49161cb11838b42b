"""Concurrency slots: held as long as their call runs, freed soon after their process dies.

A slot is an admission id in a sorted set scored by the expiry of its lease (``admit.lua``);
``settle`` removes it. A process that dies between the two (``kill -9``, out of memory, a lost
machine) never settles, and its slots only free themselves when their lease runs out: until
then they count against ``max_concurrency`` for everyone. So the lease is short
(``LLMGATE_CONCURRENCY_LEASE_S``, default 30 s), and each process renews the slots of the calls
it still has running every third of a lease, in one round trip: a stream of any length keeps
its slot, and a dead process's slots are free within one lease.

The keeper is per process (a forked work horse starts empty); its renewer is a daemon thread,
a greenlet under gevent, started on first use. ``hold``/``release`` are a dict write each on
the request path.
"""
from __future__ import annotations

import logging
import os
import time
import weakref

from flask import Flask

from ..extensions import redis_script
from .process_thread import ProcessThread

log = logging.getLogger(__name__)

KEEPER_KEY = "llmgate.accounting.slots"
DEFAULT_LEASE_S = 30.0
MIN_LEASE_S = 1.0

# KEYS: slot sets; ARGV: lease ms, then the admission id held in each set. Only a slot still
# there is renewed: one settled (or expired and dropped) meanwhile is not brought back.
_RENEW = """
redis.replicate_commands()
local t = redis.call('TIME')
local lease = tonumber(ARGV[1])
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + lease
local renewed = 0
for i = 1, #KEYS do
  if redis.call('ZSCORE', KEYS[i], ARGV[i + 1]) then
    redis.call('ZADD', KEYS[i], expiry, ARGV[i + 1])
    redis.call('PEXPIRE', KEYS[i], lease + 1000)
    renewed = renewed + 1
  end
end
return renewed
"""


def lease_s(app: Flask) -> float:
    return max(MIN_LEASE_S, float(app.config.get("CONCURRENCY_LEASE_S", DEFAULT_LEASE_S)))


class SlotKeeper:
    """The slots this process holds, and the renewer that keeps their leases running."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._renewer = ProcessThread("llmgate-slot-renewer", _renew_while_alive, weakref.ref(self))
        self._forget()
        _KEEPERS.add(self)

    def hold(self, admission_id: str, slot_keys: tuple[str, ...]) -> None:
        self._renewer.ensure_started()
        self._held[admission_id] = slot_keys

    def release(self, admission_id: str) -> None:
        self._held.pop(admission_id, None)

    def held(self) -> int:
        return len(self._held)

    def renew(self) -> int:
        """Push every held slot's expiry one lease past Redis's clock now; the number renewed."""
        held = list(self._held.items())
        if not held:
            return 0
        keys, args = [], [int(lease_s(self._app) * 1000)]
        for admission_id, slot_keys in held:
            for key in slot_keys:
                keys.append(key)
                args.append(admission_id)
        return int(redis_script(_RENEW, self._app)(keys=keys, args=args))

    def _forget(self) -> None:
        self._held: dict[str, tuple[str, ...]] = {}
        self._renewer.forget()


# A forked child (an RQ work horse) holds none of its parent's slots. Weak, so that an app (a
# test's) and its keeper can go away: the renewer then stops too.
_KEEPERS: weakref.WeakSet[SlotKeeper] = weakref.WeakSet()


def _forget_in_child() -> None:
    for keeper in list(_KEEPERS):
        keeper._forget()


os.register_at_fork(after_in_child=_forget_in_child)


def _renew_while_alive(ref: weakref.ref[SlotKeeper]) -> None:
    """The renewer: every third of a lease, until its keeper (and so its app) is gone."""
    keeper = ref()
    while keeper is not None:
        interval = lease_s(keeper._app) / 3
        del keeper  # only the app keeps it alive while this sleeps
        time.sleep(interval)
        keeper = ref()
        if keeper is not None:
            try:
                keeper.renew()
            except Exception:  # Redis away: try again next time; a slot outlives two missed renewals
                log.warning("could not renew concurrency slots", exc_info=True)


def init_app(app: Flask) -> None:
    """Made with the app (accounting.init_app), so no request ever races to create it."""
    app.extensions[KEEPER_KEY] = SlotKeeper(app)


def keeper_for(app: Flask) -> SlotKeeper:
    return app.extensions[KEEPER_KEY]
