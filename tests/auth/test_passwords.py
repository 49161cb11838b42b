"""argon2id hashing: verification, and rehash on login when the parameters change."""
from __future__ import annotations

from argon2 import PasswordHasher

from llmgate.auth import passwords
from llmgate.extensions import db
from llmgate.models.user import User


def test_hash_is_argon2id_and_verifies(app):
    with app.app_context():
        hashed = passwords.hash_password("pw-Secret-123")
        assert hashed.startswith("$argon2id$")
        assert passwords.verify_password(hashed, "pw-Secret-123")
        assert not passwords.verify_password(hashed, "wrong")
        assert not passwords.verify_password("not-a-hash", "pw-Secret-123")


def test_login_rehashes_when_parameters_changed(app, member, login):
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).hash("pw-Secret-123")
    with app.app_context():
        db.session.get(User, member.id).password_hash = old
        db.session.commit()
    login(member)
    with app.app_context():
        new = db.session.get(User, member.id).password_hash
    assert new != old and not PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).check_needs_rehash(new)
