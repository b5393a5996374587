"""The compliance report as files: JSON (the report's own fields), CSV (one row per figure: section, item, value)
and PDF. fpdf2 writes the PDF: pure Python, no system fonts or browser needed, kept up to date; its core fonts are
Latin-1, so text is written in that and anything else becomes '?'."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson

from gateway.admin.compliance import ComplianceReport

FORMATS = ("json", "csv", "pdf")
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


def render(report: ComplianceReport, fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["section", "item", "value"])
        writer.writerows(rows(report))
        return out.getvalue().encode()
    if fmt == "pdf":
        return _pdf(report)
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def when(at: float | None) -> str:
    return "never" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def sections(report: ComplianceReport) -> list[tuple[str, list[tuple[str, str]]]]:
    """The report as titled sections of (item, value): what the page, the CSV and the PDF all show."""
    return [
        (
            "Period",
            [
                ("team", report.team),
                ("from", when(report.since)),
                ("until", when(report.until)),
                ("generated", when(report.generated_at)),
                ("calls", str(report.calls)),
            ],
        ),
        ("Data classifications seen", _counts(report.classifications)),
        ("Redactions by entity type", _counts(report.redactions)),
        ("Blocks by entity type or rule", _counts(report.blocks)),
        ("Prompt-injection verdicts", _counts(report.injection)),
        (
            "Where data went",
            [
                (
                    f"{d.provider} ({d.region}), {d.classification}",
                    f"{d.calls} calls, {'allowed' if d.allowed else 'OUTSIDE RESIDENCY'}",
                )
                for d in report.destinations
            ]
            + [("calls outside residency", str(report.residency_violations))],
        ),
        ("Refusals by rule", _counts(report.refusals)),
        (
            "Key lifecycle",
            [(when(e.at), f"{e.key_id} {e.name} {e.event}".replace("  ", " ")) for e in report.key_events],
        ),
        (
            "Audit log",
            [
                ("records in period", str(report.audit_records)),
                ("first record", when(report.first_record_at)),
                ("last record", when(report.last_record_at)),
                ("writers (all teams)", str(report.audit_writers)),
                ("missing records (all teams)", str(report.audit_gaps)),
            ],
        ),
        (
            "Retention",
            [("retention in force", f"{report.retention_days} days"), ("last purge", when(report.last_purge_at))],
        ),
    ]


def rows(report: ComplianceReport) -> Iterator[tuple[str, str, str]]:
    for title, items in sections(report):
        for item, value in items:
            yield title, item, value


def _counts(counts: dict[str, int]) -> list[tuple[str, str]]:
    return [(name, str(n)) for name, n in counts.items()] or [("none", "0")]


def _pdf(report: ComplianceReport) -> bytes:
    from fpdf import FPDF  # with Pillow and fontTools under it: loaded for the first PDF, not by every process

    pdf = FPDF()
    pdf.set_title(f"Compliance report: {report.team}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(f"Compliance report: team {report.team}"), new_x="LMARGIN", new_y="NEXT")
    for title, items in sections(report):
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 9, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        for item, value in items or [("none", "")]:
            pdf.cell(70, 6, _latin1(item))
            pdf.multi_cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")
