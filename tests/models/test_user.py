"""User and ApiKey rows: lowercased unique email, aware UTC timestamps, cascade to keys."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from llmgate.auth import users
from llmgate.errors import Conflict, ValidationError
from llmgate.extensions import db
from llmgate.models.api_key import ApiKey
from llmgate.models.user import User


def test_email_is_stored_lowercased_and_unique_case_insensitively(app, make_user):
    user = make_user("Alice@Example.COM")
    assert user.email == "alice@example.com"
    with app.app_context(), pytest.raises(Conflict):
        users.create_user(email="ALICE@example.com", password="pw-Secret-123")


def test_timestamps_are_aware_utc(app, make_user):
    user = make_user()
    with app.app_context():
        row = db.session.get(User, user.id)
        assert row.created_at.utcoffset().total_seconds() == 0
        assert row.password_changed_at.tzinfo is not None


@pytest.mark.parametrize("fields", [{"role": "owner"}, {"rpm": 0}, {"budget_period": "year"},
                                    {"budget_usd": -1}, {"tpm": "many"}])
def test_invalid_fields_are_refused(app, fields):
    with app.app_context(), pytest.raises(ValidationError):
        users.create_user(email="x@example.com", password="pw-Secret-123", **fields)


def test_deleting_a_user_deletes_their_keys(app, admin, member, make_key):
    make_key(member)
    with app.app_context():
        users.delete_user(user=db.session.get(User, member.id))
        assert db.session.execute(select(ApiKey)).scalars().all() == []
