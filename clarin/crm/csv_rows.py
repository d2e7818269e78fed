"""Reading an uploaded CSV or XLSX file into validated import rows (spec integrations.md part D).

Everything here is synchronous and streaming: files are read line by line (CSV) or row by row
(``openpyxl`` read-only mode), never held whole in memory. The importer runs these generators in a
worker thread, a batch at a time.

Kept from the original: ``\\n``-only line splitting with each line parsed on its own, separators
detected separately for the header line and the first data line, lenient quotes, the header aliases,
the phone-column heuristic, the phone cleaning (no ``51`` prefixing), 1-based physical line numbers.
Fixed: a UTF-8 BOM is removed (UTF-8, UTF-16 with BOM, else latin-1), separator ties use the fixed
priority ``,`` > ``;`` > ``\\t``, leading blank lines before the header are skipped, a cleaned phone
must pass the phone rule (7–15 ASCII digits, clarin.crm.phones), every rejected row is reported with its reason, values that do not fit their
column are a row error instead of a failed write.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clarin._speedups import is_phone
from clarin.crm.phones import INVALID_PHONE

INVALID_FILE = "file is not a valid CSV or XLSX"
NO_ROWS = "CSV file must have at least a header and one data row"
NO_PHONE_COLUMN = "CSV must have a phone/telefono/celular column"

SEPARATORS = (",", ";", "\t")  # tie priority, left first
PHONE_ALIASES = ("phone", "telefono", "teléfono", "celular", "número", "numero", "movil", "móvil")
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "nombre", "nombre_completo", "nombre completo"),
    "email": ("email", "correo", "e-mail", "e-mail priv."),
    "notes": ("notes", "notas", "observaciones"),
    "tags": ("tags", "etiquetas"),
    "company": ("company", "empresa"),
    "last_name": ("last_name", "apellido", "apellidos"),
    "stage": ("estatus del lead", "stage", "etapa", "estado lead", "status"),
    "age": ("edad", "age"),
}
HEURISTIC_SKIP = frozenset({"id", "edad", "age", "dni", "dni_ce"})
# Column widths of leads/contacts (0001_schema.sql); notes is text.
FIELD_LIMITS = {"name": 255, "email": 255, "company": 255, "last_name": 255, "stage": 255}
MAX_ROWS = 1_000_000  # data rows per import
SNIFF_BYTES = 64 * 1024
DECODE_CHUNK = 1024 * 1024
XLSX_MAGIC = b"PK\x03\x04"
# Bytes that never appear in a text file (NUL and the C0 controls other than \t \n \v \f \r, ESC).
_BINARY_BYTES = frozenset(range(0x00, 0x09)) | frozenset(range(0x0E, 0x1B)) | frozenset(range(0x1C, 0x20))


class ImportFileError(Exception):
    """A problem with the file as a whole: answered as 400 with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class ImportRow:
    line: int
    jid: str
    phone: str
    name: str
    email: str
    notes: str
    tags: list[str] | None
    company: str
    last_name: str
    stage: str
    age: int | None


@dataclass(slots=True)
class RowError:
    line: int
    reason: str

    def message(self) -> str:
        return f"row {self.line}: {self.reason}"


@dataclass(slots=True)
class Columns:
    phone: int
    fields: dict[str, int]


# -- file kind and text encoding ------------------------------------------------------------------
def sniff(path: str, filename: str) -> tuple[str, str]:
    """``("xlsx", "")`` or ``("csv", encoding)``; ``ImportFileError`` for binary or empty files."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head.strip():
        raise ImportFileError(NO_ROWS)
    if head.startswith(XLSX_MAGIC):
        return "xlsx", ""
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise ImportFileError(INVALID_FILE)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "csv", "utf-16"
    if any(byte in _BINARY_BYTES for byte in head):
        raise ImportFileError(INVALID_FILE)
    return "csv", "utf-8-sig" if _is_utf8(path) else "latin-1"


def _is_utf8(path: str) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        try:
            while chunk := fh.read(DECODE_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


# -- header handling ------------------------------------------------------------------------------
def detect_separator(line: str) -> str:
    """The most frequent of ``,`` ``;`` ``\\t`` outside double quotes; ties by fixed priority; none → ``,``."""
    counts = dict.fromkeys(SEPARATORS, 0)
    in_quotes = False
    for ch in line:
        if ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch in counts:
            counts[ch] += 1
    best = max(SEPARATORS, key=lambda sep: (counts[sep], -SEPARATORS.index(sep)))
    return best if counts[best] else ","


def split_line(line: str, sep: str) -> list[str] | None:
    """One physical line as cells (lenient quotes, leading spaces dropped); None when unparsable."""
    try:
        rows = list(csv.reader((line,), delimiter=sep, skipinitialspace=True, strict=False))
    except csv.Error:
        return None
    return rows[0] if rows else [""]


def map_columns(headers: list[str], sample: list[str] | None) -> Columns:
    names = [h.strip().lower() for h in headers]
    position: dict[str, int] = {}
    for index, name in enumerate(names):
        if name:
            position[name] = index  # a repeated header: the last one wins
    fields: dict[str, int] = {}
    for key, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            if alias in position:
                fields[key] = position[alias]
                break
    phone = next((position[alias] for alias in PHONE_ALIASES if alias in position), None)
    if phone is None:
        phone = guess_phone_column(names, sample or [])
    if phone is None:
        raise ImportFileError(NO_PHONE_COLUMN)
    return Columns(phone, fields)


def guess_phone_column(names: list[str], sample: list[str]) -> int | None:
    """D.4: score each sample value that looks like a phone; highest score wins, ties → leftmost."""
    best, best_score = None, 0
    for index, raw in enumerate(sample):
        header = names[index] if index < len(names) else ""
        if header in HEURISTIC_SKIP:
            continue
        value = raw.strip()
        unquoted = value.strip("'\"")
        plus = unquoted.startswith("+")
        tick = value.startswith(("'", "\"'"))
        digits = unquoted.replace(" ", "").replace("-", "")
        if digits.startswith("+"):
            digits = digits[1:]
        if not (8 <= len(digits) <= 15 and digits.isascii() and digits.isdigit()):
            continue
        score = 1 + (10 if plus or tick else 0) + (5 if header == "" else 0) + (2 if len(digits) >= 10 else 0)
        if score > best_score:
            best, best_score = index, score
    return best


def clean_phone(value: str) -> str:
    """D.5: strip quotes/ticks/backticks/spaces around, drop spaces - ( ), then one leading +."""
    cleaned = value.strip().strip("'\"` ")
    cleaned = cleaned.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    return cleaned[1:] if cleaned.startswith("+") else cleaned


# -- rows -----------------------------------------------------------------------------------------
def build_row(line: int, cells: list[str], columns: Columns) -> ImportRow | RowError:
    def cell(index: int | None) -> str:
        return cells[index].strip() if index is not None and index < len(cells) else ""

    raw_phone = cell(columns.phone)
    phone = clean_phone(raw_phone)
    if not phone:
        return RowError(line, "phone is missing")
    if not is_phone(phone):  # the phone rule of every entry point (clarin.crm.phones), after D.5's cleaning
        return RowError(line, f"{INVALID_PHONE} {raw_phone[:40]!r}")
    values = {key: cell(columns.fields.get(key)) for key in FIELD_ALIASES}
    for key, value in values.items():
        if "\x00" in value:  # the body rule for file cells: PostgreSQL text cannot hold NUL
            return RowError(line, f"{key} contains invalid characters")
        limit = FIELD_LIMITS.get(key)
        if limit is not None and len(value) > limit:
            return RowError(line, f"{key} is too long (max {limit} characters)")
    tags = [tag.strip() for tag in values["tags"].split(",")] if values["tags"] else []
    tags = [tag for tag in tags if tag]
    age_text = values["age"]
    age: int | None = None
    if age_text:
        try:
            number = int(float(age_text)) if age_text.endswith(".0") else int(age_text)
        except ValueError:
            number = 0
        age = number if 0 < number < 200 else None
    return ImportRow(
        line=line,
        jid=phone + "@s.whatsapp.net",
        phone=phone,
        name=values["name"],
        email=values["email"],
        notes=values["notes"],
        tags=tags or None,
        company=values["company"],
        last_name=values["last_name"],
        stage=values["stage"],
        age=age,
    )


class Sheet:
    """Header, column mapping and a row iterator over one uploaded file. Close it when done."""

    def __init__(self, rows: Iterator[tuple[int, list[str] | None]], closer: Any = None) -> None:
        self._closer = closer
        self._rows = rows
        header = self._first_nonblank()
        if header is None:
            raise ImportFileError(NO_ROWS)
        self.header_line, headers = header
        if headers is None:
            raise ImportFileError("Cannot parse CSV headers")
        sample = self._first_nonblank()
        if sample is None:
            raise ImportFileError(NO_ROWS)
        self._sample = sample
        self.columns = map_columns(headers, sample[1])

    def _first_nonblank(self) -> tuple[int, list[str] | None] | None:
        for line, cells in self._rows:
            if cells is None or any(c.strip() for c in cells):
                return line, cells
        return None

    def __iter__(self) -> Iterator[ImportRow | RowError]:
        line, cells = self._sample
        yield RowError(line, "could not be parsed") if cells is None else build_row(line, cells, self.columns)
        count = 1
        for line, cells in self._rows:
            if cells is None:
                yield RowError(line, "could not be parsed")
            elif any(c.strip() for c in cells):
                count += 1
                if count > MAX_ROWS:  # e.g. a highly compressed XLSX: bounded work per request
                    yield RowError(line, f"the import is limited to {MAX_ROWS} rows; this row and the rest were ignored")
                    return
                yield build_row(line, cells, self.columns)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None


def open_sheet(path: str, filename: str) -> Sheet:
    kind, encoding = sniff(path, filename)
    if kind == "xlsx":
        return _open_xlsx(path)
    return _open_csv(path, encoding)


def _open_csv(path: str, encoding: str) -> Sheet:
    fh = open(path, encoding=encoding, newline="\n", errors="replace")
    try:
        return Sheet(_csv_lines(fh), fh.close)
    except BaseException:
        fh.close()
        raise


def _csv_lines(fh: Any) -> Iterator[tuple[int, list[str] | None]]:
    """``(line number, cells | None)``; the header and data separators are detected on first use."""
    header_sep: str | None = None
    data_sep: str | None = None
    for number, raw in enumerate(fh, start=1):
        line = raw.strip()
        if not line:
            yield number, [""]
            continue
        if "\x00" in line:
            yield number, None
            continue
        if header_sep is None:
            header_sep = detect_separator(line)
            yield number, split_line(line, header_sep)
            continue
        if data_sep is None:
            data_sep = detect_separator(line)
        yield number, split_line(line, data_sep)


def _open_xlsx(path: str) -> Sheet:
    from openpyxl import load_workbook  # imported on first use: most uploads are CSV

    # A file object, not the path: openpyxl refuses paths without an .xlsx extension (our temp file).
    fh = open(path, "rb")
    try:
        workbook = load_workbook(fh, read_only=True, data_only=True)
    except Exception:  # BadZipFile, InvalidFileException, KeyError, XML errors... on a malformed file
        fh.close()
        raise ImportFileError(INVALID_FILE) from None

    def close() -> None:
        workbook.close()
        fh.close()

    try:
        if not workbook.worksheets:
            raise ImportFileError(NO_ROWS)
        sheet = workbook.worksheets[0]
        if hasattr(sheet, "reset_dimensions"):
            sheet.reset_dimensions()  # stored dimensions can be wrong and would truncate rows
        return Sheet(_xlsx_rows(sheet), close)
    except ImportFileError:
        close()
        raise
    except Exception:
        close()
        raise ImportFileError(INVALID_FILE) from None


def _xlsx_rows(sheet: Any) -> Iterator[tuple[int, list[str] | None]]:
    """Rows of the first worksheet; a malformed part ends the sheet with one unparsable row."""
    number = 0
    rows = sheet.iter_rows(values_only=True)
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception:  # openpyxl raises assorted errors on malformed sheet XML
            yield number + 1, None
            return
        number += 1
        yield number, [_cell_text(value) for value in values]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)
