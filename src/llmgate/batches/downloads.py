"""The target of signed download links: no login, the link's signature is the permission.

Served by ``GET /api/batches/download/<token>`` (``llmgate.api.batches``), so the route is in
the REST API's spec with the rest of ``/api``.
"""
from __future__ import annotations

from flask import Response, send_file

from ..extensions import db
from ..models.file import StoredFile
from . import links, storage, tables, tabular


def send_result(token: str) -> Response:
    """The result table the token names, as an attachment (403 bad or expired link, 404 gone)."""
    batch, fmt = links.resolve(token)
    file_id = tabular.result_file(batch=batch, fmt=fmt)
    row = db.session.get(StoredFile, file_id)
    return send_file(storage.path_of(row.storage_name), mimetype=tables.MEDIA_TYPES[fmt], as_attachment=True,
                     download_name=row.filename, conditional=False, etag=False)
