"""R74 ``POST /api/import/csv``: multipart ``file`` (CSV or XLSX) + ``import_type`` (leads|contacts|both).

Response ``{"imported", "skipped", "errors": [...] | null, "success": true}``. WebSocket after an
import that wrote rows: ``lead_update {"action":"imported","count"}`` (leads/both) and
``contact_update {"action":"imported","count"}`` (contacts/both). Details in ``clarin.crm.importer``.
"""

from __future__ import annotations

from clarin.crm import importer
from clarin.http.errors import HTTPError
from clarin.http.request import Request
from clarin.http.routes import RouteGroup
from clarin.wire.imports import ImportResponse

routes = RouteGroup(tags=("imports",))


@routes.post("/api/import/csv", response=ImportResponse)
async def import_csv(req: Request) -> ImportResponse:
    upload = await importer.receive_upload(req)
    try:
        if upload.path is None:
            raise HTTPError(400, importer.FILE_REQUIRED)
        import_type = importer.parse_import_type(upload.fields.get("import_type"))
        return await importer.import_upload(req.app, req.account_id, upload, import_type)
    finally:
        upload.discard()
