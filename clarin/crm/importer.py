"""R74 CSV/XLSX import: stream the multipart upload to a temporary file, then import it in batches.

- The body is parsed with python-multipart's streaming ``MultipartParser`` while it arrives; the
  ``file`` part goes straight to a temporary file and the body limit is enforced chunk by chunk
  (413 past ``BODY_LIMIT``), so an upload is never held whole in memory.
- The file is read row by row (``clarin.crm.csv_rows``) in a worker thread, a batch at a time.
- Good rows are written in batches of at most 1000: one ``unnest`` upsert per table per batch, each
  batch in its own transaction. A failing batch is rolled back whole and each of its rows is reported.
- Bad rows are skipped and reported as ``row <n>: <reason>`` (1-based physical line numbers).
- At the end: the leads cache is dropped once, ``lead_update {"action":"imported","count"}`` and, when
  contacts were written, ``contact_update {"action":"imported","count"}`` are broadcast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from clarin.crm.csv_rows import ImportFileError, ImportRow, RowError, open_sheet
from clarin.crm.leads_cache import invalidate_leads
from clarin.db.errors import DatabaseError, DatabaseUnavailable
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.request import TOO_LARGE, Request
from clarin.state import AppState
from clarin.wire.imports import ImportedEvent, ImportResponse

log = logging.getLogger("clarin.import")

Q_DEFAULT_STAGES = query("import_default_stages")
Q_UPSERT_CONTACTS = query("import_upsert_contacts")
Q_UPSERT_LEADS = query("import_upsert_leads")

BATCH_SIZE = 1000
MAX_ERRORS = 5000  # messages kept in the response; the rest are summarised in one line
MAX_FIELD_BYTES = 1024  # non-file form fields (import_type) are tiny
IMPORT_TYPES = ("leads", "contacts", "both")
FILE_REQUIRED = "CSV file is required"
BAD_IMPORT_TYPE = "import_type must be 'leads', 'contacts', or 'both'"


# -- multipart upload -------------------------------------------------------------------------------
@dataclass
class Upload:
    path: str | None = None
    filename: str = ""
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        if self.path is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.path = None


class _FormCollector:
    """python-multipart callbacks: the first ``file`` part to disk, small text fields to memory."""

    def __init__(self, upload: Upload, file_field: str) -> None:
        self.upload = upload
        self.file_field = file_field
        self.finished = False
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._sink: Any = None  # open temp file of the current part, or a bytearray, or None
        self._field_name = ""
        self._file: Any = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._sink = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == self.file_field and b"filename" in options and self.upload.path is None:
            handle = tempfile.NamedTemporaryFile(prefix="clarin-import-", delete=False)
            self.upload.path = handle.name
            self.upload.filename = options[b"filename"].decode("utf-8", "replace")
            self._file = handle
            self._sink = handle
        elif b"filename" not in options and name:
            self._field_name = name
            self._sink = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        sink = self._sink
        if sink is None:
            return
        if isinstance(sink, bytearray):
            if len(sink) < MAX_FIELD_BYTES:
                sink += data[start:end][: MAX_FIELD_BYTES - len(sink)]
            return
        sink.write(data[start:end])
        self.upload.size += end - start

    def _part_end(self) -> None:
        sink = self._sink
        if isinstance(sink, bytearray):
            self.upload.fields.setdefault(self._field_name, sink.decode("utf-8", "replace"))
        elif sink is not None:
            sink.close()
            self._file = None
        self._sink = None

    def _end(self) -> None:
        self.finished = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive_upload(req: Request, file_field: str = "file") -> Upload:
    """Stream a multipart body: the file part to a temp file, with the body limit enforced as it arrives."""
    content_type, options = parse_options_header(req.header("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HTTPError(400, FILE_REQUIRED)
    limit = req.app.settings.body_limit
    declared = req.header("content-length")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, TOO_LARGE)
    upload = Upload()
    collector = _FormCollector(upload, file_field)
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        received = 0
        # Iterate the RSGI protocol itself: ``Request.stream()`` (protocol.__aiter__()) fails under
        # ``async for`` with RSGIProtocolError.
        async for chunk in req.protocol:
            received += len(chunk)
            if received > limit:
                raise HTTPError(413, TOO_LARGE)
            parser.write(chunk)
        parser.finalize()
        if not collector.finished:
            raise HTTPError(400, "Invalid multipart body")
    except FormParserError:
        collector.close()
        upload.discard()
        raise HTTPError(400, "Invalid multipart body") from None
    except BaseException:
        collector.close()
        upload.discard()
        raise
    collector.close()
    return upload


# -- import -----------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0
    contacts_written: int = 0
    errors: list[str] = field(default_factory=list)
    hidden_errors: int = 0

    def reject(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"row {line}: {reason}")
        else:
            self.hidden_errors += 1

    def response(self) -> ImportResponse:
        errors = list(self.errors)
        if self.hidden_errors:
            errors.append(f"... and {self.hidden_errors} more errors")
        return ImportResponse(imported=self.imported, skipped=self.skipped, errors=errors or None)


@dataclass(frozen=True, slots=True)
class StageMap:
    """The default pipeline's stages by case-folded name, plus its first stage."""

    by_name: dict[str, tuple[uuid.UUID, uuid.UUID]]
    first: tuple[uuid.UUID, uuid.UUID] | None

    def resolve(self, cell: str) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        match = self.by_name.get(cell.casefold()) if cell else None
        pipeline_stage = match or self.first
        return pipeline_stage if pipeline_stage else (None, None)


def parse_import_type(raw: str | None) -> str:
    value = (raw or "").strip().lower() or "leads"
    if value not in IMPORT_TYPES:
        raise HTTPError(400, BAD_IMPORT_TYPE)
    return value


async def import_upload(state: AppState, account_id: uuid.UUID, upload: Upload, import_type: str) -> ImportResponse:
    if upload.path is None:
        raise HTTPError(400, FILE_REQUIRED)
    try:
        sheet = await asyncio.to_thread(open_sheet, upload.path, upload.filename)
    except ImportFileError as exc:
        raise HTTPError(400, exc.message) from None
    report = ImportReport()
    try:
        stages = await _stage_map(state, account_id) if import_type != "contacts" else StageMap({}, None)
        rows = iter(sheet)
        while True:
            good, bad, more = await asyncio.to_thread(_take, rows, BATCH_SIZE)
            for error in bad:
                report.reject(error.line, error.reason)
            if good:
                await _write_batch(state, account_id, import_type, stages, good, report)
            if not more:
                break
    finally:
        await asyncio.to_thread(sheet.close)
        await _announce(state, account_id, import_type, report)
    return report.response()


def _take(rows: Iterator[ImportRow | RowError], size: int) -> tuple[list[ImportRow], list[RowError], bool]:
    """Up to ``size`` good rows (and the bad rows met on the way); False when the file is exhausted."""
    good: list[ImportRow] = []
    bad: list[RowError] = []
    for row in rows:
        if isinstance(row, RowError):
            bad.append(row)
        else:
            good.append(row)
            if len(good) >= size:
                return good, bad, True
    return good, bad, False


async def _stage_map(state: AppState, account_id: uuid.UUID) -> StageMap:
    rows = await state.db.fetch(Q_DEFAULT_STAGES, [account_id])
    by_name: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}
    for row in rows:
        by_name.setdefault(str(row["name"]).casefold(), (uuid.UUID(row["pipeline_id"]), uuid.UUID(row["id"])))
    first = (uuid.UUID(rows[0]["pipeline_id"]), uuid.UUID(rows[0]["id"])) if rows else None
    return StageMap(by_name, first)


def _merge_by_jid(rows: list[ImportRow]) -> list[ImportRow]:
    """One row per JID within a batch (an upsert statement may touch a row once), merged the way
    consecutive upserts would: later non-empty name, later phone, later tags; the rest from the first."""
    merged: dict[str, ImportRow] = {}
    for row in rows:
        first = merged.get(row.jid)
        if first is None:
            merged[row.jid] = ImportRow(**{slot: getattr(row, slot) for slot in ImportRow.__slots__})
            continue
        first.name = row.name or first.name
        first.phone = row.phone
        first.tags = row.tags or first.tags
        first.email = first.email or row.email
        first.company = first.company or row.company
        first.last_name = first.last_name or row.last_name
        first.notes = first.notes or row.notes
    return list(merged.values())


async def _write_batch(
    state: AppState, account_id: uuid.UUID, import_type: str, stages: StageMap, rows: list[ImportRow],
    report: ImportReport,
) -> None:
    unique = _merge_by_jid(rows)
    try:
        async with state.db.transaction() as tx:
            if import_type in ("contacts", "both"):
                await tx.execute(
                    Q_UPSERT_CONTACTS,
                    [account_id, [r.jid for r in unique], [r.phone for r in unique], [r.name for r in unique],
                     [r.email for r in unique], [r.company for r in unique], [r.last_name for r in unique],
                     [r.notes for r in unique]],
                )
            if import_type in ("leads", "both"):
                placement = [stages.resolve(r.stage) for r in unique]
                await tx.execute(
                    Q_UPSERT_LEADS,
                    [account_id, [r.jid for r in unique], [r.name for r in unique], [r.phone for r in unique],
                     [r.email for r in unique], [r.notes for r in unique],
                     [json.dumps(r.tags, ensure_ascii=False) if r.tags else None for r in unique],
                     [r.company for r in unique], [r.last_name for r in unique], [r.age for r in unique],
                     [p for p, _ in placement], [s for _, s in placement]],
                )
    except DatabaseUnavailable:
        raise
    except DatabaseError as exc:
        log.warning("import batch of %d rows rolled back: %s", len(rows), exc.detail)
        for row in rows:
            report.reject(row.line, f"not saved: its batch of {len(rows)} rows was rolled back")
        return
    report.imported += len(rows)
    if import_type in ("contacts", "both"):
        report.contacts_written += len(rows)


async def _announce(state: AppState, account_id: uuid.UUID, import_type: str, report: ImportReport) -> None:
    await invalidate_leads(state, account_id)
    if not report.imported:
        return
    if import_type in ("leads", "both"):
        await state.broadcaster.broadcast(account_id, "lead_update", ImportedEvent("imported", report.imported))
    if report.contacts_written:
        await state.broadcaster.broadcast(
            account_id, "contact_update", ImportedEvent("imported", report.contacts_written)
        )
