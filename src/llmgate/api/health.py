"""Liveness and readiness probes."""
from __future__ import annotations

from flask_restx import Namespace, Resource
from sqlalchemy import text

from ..extensions import db, get_redis

ns = Namespace("health", path="/", description="Liveness and readiness")


@ns.route("/healthz")
class Health(Resource):
    @ns.doc(security=[])
    def get(self):
        """The process is alive."""
        return {"status": "ok"}


@ns.route("/readyz")
class Ready(Resource):
    @ns.doc(security=[], responses={200: "database and Redis reachable", 503: "a dependency is down"})
    def get(self):
        """The database and Redis answer."""
        checks = {}
        try:
            db.session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means not ready
            db.session.rollback()
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            get_redis().ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
