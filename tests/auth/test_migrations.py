"""0001_foundation goes up, down to nothing and up again on a scratch SQLite file."""
from __future__ import annotations

import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from llmgate import create_app
from llmgate.extensions import db


def test_upgrade_downgrade_upgrade_on_scratch_sqlite(migrated, tmp_path):
    app = create_app({**migrated, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'scratch.db'}"})
    with app.app_context():
        upgrade()
        assert {"users", "api_keys"} <= set(sa.inspect(db.engine).get_table_names())
        downgrade(revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert {"users", "api_keys"} <= set(sa.inspect(db.engine).get_table_names())
        db.engine.dispose()
