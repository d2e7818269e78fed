"""R74 CSV/XLSX import: stream the multipart upload to a temporary file, then import it in batches.

- The body is parsed with ``clarin.http.multipart`` (python-multipart's streaming parser) while it
  arrives; the ``file`` part goes straight to a temporary file and the body limit is enforced chunk by chunk
  (413 past ``BODY_LIMIT``), so an upload is never held whole in memory.
- The file is read row by row (``clarin.crm.csv_rows``) in a worker thread, a batch at a time.
- Good rows are written in batches of at most 1000: one ``unnest`` upsert per table per batch, each
  batch in its own transaction. A failing batch is rolled back whole and each of its rows is reported.
- Bad rows are skipped and reported as ``row <n>: <reason>`` (1-based physical line numbers).
- After each committed batch: the leads cache is dropped, ``lead_update {"action":"imported","count"}``
  (leads/both) and ``contact_update {"action":"imported","count"}`` (contacts/both) are broadcast, ``count`` =
  the rows of that batch; their webhook outbox rows commit in the batch's transaction (an import is not one
  transaction, so each committed batch carries its own events: none is lost if the import stops half-way).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from clarin.crm.csv_rows import ImportFileError, ImportRow, RowError, open_sheet
from clarin.crm.leads_cache import invalidate_leads
from clarin.db.errors import DatabaseError, DatabaseUnavailable
from clarin.db.queries import query
from clarin.http.errors import HTTPError
from clarin.http.multipart import MultipartStream, boundary_of
from clarin.http.request import TOO_LARGE, Request
from clarin.state import AppState
from clarin.webhooks.recording import recording
from clarin.wire.imports import ImportedEvent, ImportResponse

log = logging.getLogger("clarin.import")

Q_DEFAULT_STAGES = query("import_default_stages")
Q_UPSERT_CONTACTS = query("import_upsert_contacts")
Q_UPSERT_LEADS = query("import_upsert_leads")

BATCH_SIZE = 1000
MAX_ERRORS = 5000  # messages kept in the response; the rest are summarised in one line
MAX_FIELD_BYTES = 1024  # non-file form fields (import_type) are tiny
IMPORT_TYPES = ("leads", "contacts", "both")
# The contract has no import-progress event or status route (the response comes at the end), so a long import
# reports to the operator's log instead: a line each PROGRESS_ROWS rows read or PROGRESS_SECONDS, and one at the end.
PROGRESS_ROWS = 10_000
PROGRESS_SECONDS = 10.0
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


async def receive_upload(req: Request, file_field: str = "file") -> Upload:
    """Stream a multipart body: the file part to a temp file, with the body limit enforced as it arrives."""
    boundary = boundary_of(req.header("content-type"))
    if boundary is None:
        raise HTTPError(400, FILE_REQUIRED)
    limit = req.app.settings.body_limit
    declared = req.header("content-length")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, TOO_LARGE)
    form = MultipartStream(boundary, req.stream(), limit, HTTPError(413, TOO_LARGE))
    upload = Upload()
    try:
        while (part := await form.next_part()) is not None:
            if part.name == file_field and part.filename is not None and upload.path is None:
                with tempfile.NamedTemporaryFile(prefix="clarin-import-", delete=False) as handle:
                    upload.path = handle.name
                    upload.filename = part.filename
                    async for chunk in form.part_data():
                        handle.write(chunk)
                        upload.size += len(chunk)
            elif part.filename is None and part.name:
                value = await form.read_text(MAX_FIELD_BYTES, HTTPError(400, f"form field {part.name!r} is too large"))
                upload.fields.setdefault(part.name, value)
            else:
                await form.skip_part()
    except BaseException:
        upload.discard()
        raise
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
    progress = _ProgressLog(f"import {upload.filename!r} ({import_type}, {upload.size:,} bytes)")
    try:
        stages = await _stage_map(state, account_id) if import_type != "contacts" else StageMap({}, None)
        rows = iter(sheet)
        while True:
            good, bad, more = await asyncio.to_thread(_take, rows, BATCH_SIZE)
            for error in bad:
                report.reject(error.line, error.reason)
            if good:
                await _write_batch(state, account_id, import_type, stages, good, report)
            progress.rows(len(good) + len(bad), report)
            if not more:
                break
        progress.finished(report)
    finally:
        await asyncio.to_thread(sheet.close)
    return report.response()


class _ProgressLog:
    """INFO lines while a big import runs (the request id comes with them in JSON logs)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.read = 0
        self.started = self.last = time.monotonic()
        self.next_rows = PROGRESS_ROWS

    def rows(self, count: int, report: ImportReport) -> None:
        self.read += count
        now = time.monotonic()
        if self.read >= self.next_rows or now - self.last >= PROGRESS_SECONDS:
            self.next_rows = (self.read // PROGRESS_ROWS + 1) * PROGRESS_ROWS
            self.last = now
            log.info("%s: %s rows read, %s imported, %s skipped, %.1f s", self.label, f"{self.read:,}",
                     f"{report.imported:,}", f"{report.skipped:,}", now - self.started)

    def finished(self, report: ImportReport) -> None:
        log.info("%s finished: %s rows read, %s imported, %s skipped in %.1f s", self.label, f"{self.read:,}",
                 f"{report.imported:,}", f"{report.skipped:,}", time.monotonic() - self.started)


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
        async with recording(state, account_id) as rec, rec.transaction() as tx:
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
            rec.on_commit(lambda: invalidate_leads(state, account_id))
            if import_type in ("leads", "both"):
                rec.emit("lead_update", ImportedEvent("imported", len(rows)))
            if import_type in ("contacts", "both"):
                rec.emit("contact_update", ImportedEvent("imported", len(rows)))
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

