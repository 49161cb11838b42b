"""Batch pages through the test client: preview, submit, upload errors, ownership, controls."""
from __future__ import annotations

import io

import pytest
import yaml

from tests.fakes.upstream import FakeUpstream


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def batch_browser(app, app_factory, upstream, tmp_path, browser_factory):
    """A Browser on an app whose catalog has one model on the fake upstream."""
    from tests.dashboard.conftest import Browser

    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump({"models": [{
        "name": "fake-mini", "provider": "openai", "model": "up", "api_base": upstream.openai_base_url,
        "api_key": "sk-up", "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}]}))
    live = app_factory(MODELS_FILE=str(models))
    return lambda: Browser(live.test_client())


CSV = b"id,review\n1,great\n2,awful\n3,fine\n"


def _upload(browser, data: bytes = CSV, name: str = "reviews.csv"):
    return browser.post("/dashboard/batches/upload", {"file": (io.BytesIO(data), name)},
                        headers={"X-Requested-With": "fetch", "X-CSRF-Token": browser.token},
                        content_type="multipart/form-data")


def test_preview_renders_prompts_and_a_cost_estimate(batch_browser, member):
    browser = batch_browser()
    browser.sign_in(member)
    uploaded = _upload(browser)
    assert uploaded.status_code == 200, uploaded.get_data(as_text=True)
    file_id = uploaded.get_json()["file_id"]
    response = browser.post("/dashboard/batches/preview", {"file_id": file_id, "model": "fake-mini",
                                                           "template": "Rate: {{ review }}", "max_tokens": "10"},
                            headers={"X-Requested-With": "fetch"})
    html = response.get_json()["html"]
    assert "Rate: great" in html and "Rate: awful" in html
    assert "Cost, at most" in html and "$0.0001" in html  # 3 rows x 10 output tokens at $2/Mtok + input


@pytest.mark.parametrize("fields, message", [
    ({"template": "Rate: {{ stars }}"}, "stars"),
    ({"template": "Rate: {{ review }}", "model": "no-such-model"}, "does not exist"),
    ({"template": "Rate: {{ review }}", "max_tokens": "many"}, "must be a number"),
    ({"template": ""}, "template is required"),
])
def test_preview_explains_what_is_wrong(batch_browser, member, fields, message):
    browser = batch_browser()
    browser.sign_in(member)
    file_id = _upload(browser).get_json()["file_id"]
    response = browser.post("/dashboard/batches/preview", {"file_id": file_id, "model": "fake-mini", **fields},
                            headers={"X-Requested-With": "fetch"})
    html = response.get_json()["html"]
    assert "Error:" in html and message in html


def test_bad_uploads_get_clear_messages(batch_browser, member):
    browser = batch_browser()
    browser.sign_in(member)
    response = _upload(browser, b"whatever", "notes.docx")
    assert response.status_code in (400, 422) and response.get_json()["message"]
    file_id = _upload(browser, b"id,review\n", "empty.csv").get_json()["file_id"]
    html = browser.post("/dashboard/batches/preview", {"file_id": file_id, "model": "fake-mini", "template": "{{ id }}"},
                        headers={"X-Requested-With": "fetch"}).get_json()["html"]
    assert "no rows" in html


def test_submit_without_script_lists_the_batch_and_hides_it_from_others(batch_browser, member, make_user):
    browser = batch_browser()
    browser.sign_in(member)
    response = browser.post("/dashboard/batches/new", {"file": (io.BytesIO(CSV), "reviews.csv"), "model": "fake-mini",
                                                       "template": "Rate: {{ review }}"},
                            content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = browser.get("/dashboard/batches").get_data(as_text=True)
    batch_id = page.split('data-batch-id="', 1)[1].split('"', 1)[0]
    assert "submitted: 3 rows on fake-mini" in page and "0 of 3 rows" in page
    progress = browser.get(f"/dashboard/batches/{batch_id}/progress.json").get_json()
    assert progress["total"] == 3 and progress["active"] is True

    other = batch_browser()
    other.sign_in(make_user("nosy@example.com"))
    assert batch_id not in other.get("/dashboard/batches").get_data(as_text=True)
    assert other.get(f"/dashboard/batches/{batch_id}/progress.json").status_code == 404
    assert other.post(f"/dashboard/batches/{batch_id}/cancel").status_code == 404
    assert other.get(f"/dashboard/batches/{batch_id}/download").status_code == 404

    response = browser.post(f"/dashboard/batches/{batch_id}/cancel")
    assert response.status_code == 302
    assert "cancelling" in browser.get("/dashboard/batches").get_data(as_text=True)
    # Not finished yet: no results, said in words.
    assert browser.get(f"/dashboard/batches/{batch_id}/download").status_code == 409


def test_submit_errors_keep_the_form_and_say_why(batch_browser, member):
    browser = batch_browser()
    browser.sign_in(member)
    response = browser.post("/dashboard/batches/new", {"model": "fake-mini", "template": "Rate: {{ review }}"},
                            content_type="multipart/form-data")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Choose a file to upload" in page and "The batch was not submitted." in page
    assert "Rate: {{ review }}" in page  # what the user wrote is still there


def test_admin_sees_every_batch_with_its_owner(batch_browser, member, admin):
    browser = batch_browser()
    browser.sign_in(member)
    browser.post("/dashboard/batches/new", {"file": (io.BytesIO(CSV), "reviews.csv"), "model": "fake-mini",
                                            "template": "{{ review }}"}, content_type="multipart/form-data")
    boss = batch_browser()
    boss.sign_in(admin)
    page = boss.get("/dashboard/admin/batches").get_data(as_text=True)
    assert member.email in page and "0 of 3 rows" in page
    assert "0 of 3 rows" not in boss.get("/dashboard/batches").get_data(as_text=True)


def test_progress_polling_does_not_keep_an_idle_session_alive(batch_browser, member):
    import time

    from llmgate.dashboard import session as dashboard_session

    browser = batch_browser()
    browser.sign_in(member)
    with browser.client.session_transaction() as sess:
        sess[dashboard_session.LAST_SEEN] = before = time.time() - 100
    browser.get("/dashboard/batches/none/progress.json")
    with browser.client.session_transaction() as sess:
        assert sess[dashboard_session.LAST_SEEN] == before
