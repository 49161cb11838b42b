"""The target of signed download links: no login, the link's signature is the permission."""
from __future__ import annotations

from flask import Blueprint, send_file

from ..extensions import db
from ..models.file import StoredFile
from . import links, storage, tables, tabular

bp = Blueprint("batches_download", __name__)


@bp.get("/api/batches/download/<token>")
def download(token: str):
    batch, fmt = links.resolve(token)
    file_id = tabular.result_file(batch=batch, fmt=fmt)
    row = db.session.get(StoredFile, file_id)
    return send_file(storage.path_of(row.storage_name), mimetype=tables.MEDIA_TYPES[fmt], as_attachment=True,
                     download_name=row.filename, conditional=False, etag=False)
