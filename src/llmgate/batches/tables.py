"""Tabular files at the boundary: read uploads in chunks, write results streaming.

Readers yield lists of plain dicts (JSON-safe cells), never a whole file, so a million-row
upload costs one chunk of memory. CSV/TSV cells are read as text exactly as written (no type
guessing that could differ from one chunk to the next); Parquet, JSONL and Excel keep their
types. Writers append chunk by chunk; CSV and Excel cells are protected against formula
injection (OWASP: a leading ``'`` on cells starting with ``= + - @`` tab or CR).
"""
from __future__ import annotations

import base64
import csv
import json
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any


# pandas (with numpy and pyarrow, ~90 MB) is imported inside the functions that use it, so
# that API workers which never touch a table don't carry it.
if TYPE_CHECKING:
    import pandas as pd

from ..errors import BadRequest

FORMATS = ("csv", "tsv", "parquet", "jsonl", "xlsx")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
               ".jsonl": "jsonl", ".ndjson": "jsonl", ".xlsx": "xlsx", ".xlsm": "xlsx"}
MEDIA_TYPES = {
    "csv": "text/csv", "tsv": "text/tab-separated-values", "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/jsonl",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXCEL_MAX_ROWS = 1_048_575  # one row of the sheet is the header


class TableError(BadRequest):
    """The file cannot be read as the table it claims to be (400 with a clear message)."""

    code = "invalid_file"


def detect_format(filename: str | None, explicit: str | None = None) -> str:
    if explicit:
        fmt = explicit.lower().lstrip(".")
        fmt = {"excel": "xlsx", "xls": "xlsx", "json": "jsonl", "ndjson": "jsonl"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise TableError(f"Unknown format {explicit!r}; use one of {', '.join(FORMATS)}.", param="format")
        return fmt
    suffix = Path(filename or "").suffix.lower()
    if suffix not in _EXTENSIONS:
        raise TableError(f"Cannot tell the format of {filename!r} from its name; use a .csv, .tsv, .parquet, "
                         ".jsonl or .xlsx file (or say format=…).", param="file")
    return _EXTENSIONS[suffix]


def json_safe(value: Any) -> Any:
    """A cell as JSON can store it (NaN → None, dates → ISO text, bytes → base64)."""
    import pandas as pd
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if pd.isna(value) if not hasattr(value, "__len__") else False:
        return None
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    return str(value)


# --- reading --------------------------------------------------------------------------------------

def iter_chunks(path: str | Path, fmt: str, *, chunk_rows: int = 5000) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
    """``(columns, rows)`` chunk after chunk; raises ``TableError`` naming what is wrong."""
    import pandas as pd
    reader = {"csv": _csv_chunks, "tsv": _csv_chunks, "parquet": _parquet_chunks, "jsonl": _jsonl_chunks,
              "xlsx": _excel_chunks}[fmt]
    try:
        yield from reader(Path(path), fmt, chunk_rows)
    except TableError:
        raise
    except UnicodeDecodeError as error:
        raise TableError(f"The file is not valid UTF-8 text (byte {error.start}): save it as UTF-8 and retry.",
                         param="file") from None
    except pd.errors.EmptyDataError:
        raise TableError("The file is empty: it has no header row.", param="file") from None
    except pd.errors.ParserWarning:
        raise TableError("The CSV file is malformed: a row has more fields than the header.", param="file") from None
    except pd.errors.ParserError as error:
        raise TableError(f"The {fmt.upper()} file is malformed: {str(error).strip()}", param="file") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TableError(f"The file cannot be read as {fmt.upper()}: {error}", param="file") from None
    except Exception as error:  # pyarrow / openpyxl have their own error classes
        raise TableError(f"The file cannot be read as {fmt.upper()}: {type(error).__name__}: {error}",
                         param="file") from None


def _check_columns(columns: Sequence[Any]) -> list[str]:
    names = [str(c).strip() if c is not None else "" for c in columns]
    if not names or any(not n for n in names):
        raise TableError("Every column needs a name in the header row.", param="file")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TableError(f"Duplicate column names: {', '.join(dupes)}.", param="file")
    return names


def _csv_chunks(path: Path, fmt: str, chunk_rows: int):
    import pandas as pd
    sep = "\t" if fmt == "tsv" else ","
    # dtype=str + no NA guessing: cells come back exactly as written, the same in every chunk.
    # on_bad_lines="error" and the C parser report the line of a row with too many fields.
    # index_col=False: a first row with an extra field must be an error, not silently an index.
    reader = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False, chunksize=chunk_rows,
                         encoding="utf-8-sig", encoding_errors="strict", on_bad_lines="error", engine="c",
                         index_col=False)
    with reader, warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        columns: list[str] | None = None
        for frame in reader:
            if columns is None:
                columns = _check_columns(list(frame.columns))
            frame.columns = columns
            yield columns, frame.to_dict("records")
        if columns is None:
            header = pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8-sig")
            yield _check_columns(list(header.columns)), []


def _parquet_chunks(path: Path, fmt: str, chunk_rows: int):
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    columns = _check_columns(parquet.schema_arrow.names)
    produced = False
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        produced = True
        yield columns, [{k: json_safe(v) for k, v in row.items()} for row in batch.to_pylist()]
    if not produced:
        yield columns, []


def _jsonl_chunks(path: Path, fmt: str, chunk_rows: int):
    # Columns: the keys in order of first appearance; rows lacking a key get None there.
    columns: list[str] = []
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8-sig", errors="strict") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise TableError(f"Line {number} is not valid JSON: {error.msg}.", param="file") from None
            if not isinstance(row, dict):
                raise TableError(f"Line {number} is not a JSON object.", param="file")
            for key in row:
                if key not in seen:
                    seen.add(key)
                    columns.append(key)
            rows.append({k: json_safe(v) for k, v in row.items()})
            if len(rows) >= chunk_rows:
                yield list(columns), rows
                rows = []
    if rows or not columns:
        yield list(columns), rows


def _excel_chunks(path: Path, fmt: str, chunk_rows: int):
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)  # read_only streams the sheet
    try:
        sheet = workbook.active
        values = sheet.iter_rows(values_only=True)
        header = next(values, None)
        if header is None:
            raise TableError("The sheet is empty: it has no header row.", param="file")
        # Trailing empty header cells are formatting, not columns.
        header = list(header)
        while header and header[-1] is None:
            header.pop()
        columns = _check_columns(header)
        rows: list[dict[str, Any]] = []
        for cells in values:
            if cells is None or all(c is None for c in cells):
                continue
            rows.append({c: json_safe(cells[i] if i < len(cells) else None) for i, c in enumerate(columns)})
            if len(rows) >= chunk_rows:
                yield columns, rows
                rows = []
        yield columns, rows
    finally:
        workbook.close()


# --- writing --------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def protect_cell(value: Any) -> Any:
    """OWASP CSV injection: text a spreadsheet would run as a formula gets a leading ``'``.

    Plain signed numbers (``-5``, ``+3.2``) are left alone: no spreadsheet runs them."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def _cell_text(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


class TableWriter:
    """Append rows (dicts keyed by ``columns``) to ``path`` in ``fmt``; ``close()`` finishes the file."""

    def __init__(self, path: str | Path, fmt: str, columns: Sequence[str], *, int_columns: Sequence[str] = ()):
        self.path, self.fmt, self.columns = Path(path), fmt, list(columns)
        self.int_columns = set(int_columns)
        self.rows_written = 0
        self._handle = None
        self._parquet = None
        self._workbook = None
        if fmt in ("csv", "tsv"):
            self._handle = open(self.path, "w", encoding="utf-8", newline="")
            self._csv = csv.writer(self._handle, delimiter="\t" if fmt == "tsv" else ",")
            self._csv.writerow([protect_cell(c) for c in self.columns])
        elif fmt == "jsonl":
            self._handle = open(self.path, "w", encoding="utf-8")
        elif fmt == "xlsx":
            from openpyxl import Workbook

            self._workbook = Workbook(write_only=True)  # streams rows to a temp file, not memory
            self._sheet = self._workbook.create_sheet("results")
            self._sheet.append([protect_cell(c) for c in self.columns])
        elif fmt != "parquet":
            raise TableError(f"Unknown format {fmt!r}.", param="format")

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if self.fmt in ("csv", "tsv"):
            self._csv.writerows([[protect_cell(_cell_text(r.get(c))) for c in self.columns] for r in rows])
        elif self.fmt == "jsonl":
            for row in rows:
                self._handle.write(json.dumps({c: row.get(c) for c in self.columns}, ensure_ascii=False) + "\n")
        elif self.fmt == "xlsx":
            if self.rows_written + len(rows) > EXCEL_MAX_ROWS:
                raise TableError(f"Excel sheets hold at most {EXCEL_MAX_ROWS} rows; download CSV or Parquet.",
                                 param="format")
            for row in rows:
                self._sheet.append([protect_cell(_cell_text(row.get(c))) for c in self.columns])
        else:
            self._write_parquet(rows)
        self.rows_written += len(rows)

    def _write_parquet(self, rows: Sequence[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Nested values become JSON text so that every chunk has the same flat schema.
        data = {c: [_cell_text(r.get(c)) for r in rows] for c in self.columns}
        if self._parquet is None:
            fields = []
            for column in self.columns:
                kind = pa.array(data[column]).type if data[column] else pa.null()
                if pa.types.is_null(kind):
                    kind = pa.int64() if column in self.int_columns else pa.string()
                elif pa.types.is_integer(kind) and column not in self.int_columns:
                    kind = pa.float64()  # a later 1.5 must still fit
                fields.append(pa.field(column, kind))
            self._schema = pa.schema(fields)
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        arrays = []
        for field in self._schema:
            try:
                arrays.append(pa.array(data[field.name], type=field.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                # A later chunk disagrees with the first one's types: keep the value, as text.
                arrays.append(pa.array([_coerce(v, field.type) for v in data[field.name]], type=field.type))
        self._parquet.write_table(pa.Table.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self.fmt == "parquet":
            if self._parquet is None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({c: pa.array([], type=pa.string()) for c in self.columns}), self.path)
            else:
                self._parquet.close()
        if self._workbook is not None:
            self._workbook.save(self.path)


def _coerce(value: Any, kind: Any) -> Any:
    """A value into a Parquet column whose type the first chunk fixed; None when it cannot fit."""
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_string(kind):
        return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    try:
        if pa.types.is_floating(kind):
            return float(value)
        if pa.types.is_integer(kind):
            return int(value)
        if pa.types.is_boolean(kind):
            return bool(value)
    except (TypeError, ValueError):
        return None
    return None
