"""The one table (Markdown-compatible, so it can be pasted into the README) and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.registry import Line


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "conns":
        text = f"{value:.0f}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def cells(line: Line) -> list[str]:
    figure = line.figure_text or fmt(line.figure, line.unit)
    if line.reference is not None:
        reference = fmt(line.reference, line.reference_unit or line.unit)
        if line.reference_label:
            reference += f" ({line.reference_label})"
    else:
        reference = line.reference_label or "—"
    ratio = f"{line.ratio:.2f}" if line.ratio is not None else "—"
    target = line.target.text() if line.target else "—"
    return [line.row, figure, reference, ratio, target, line.verdict]


HEADER = ["Row", "Figure", "Reference (same run)", "Ratio", "Target", "Verdict"]


def render(lines: list[Line], footer: list[str]) -> str:
    rows = [HEADER]
    notes: list[str] = []
    for line in lines:
        row = cells(line)
        if line.note:
            notes.append(line.note)
            row[-1] += f" [{len(notes)}]"
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    right = {1, 2, 3}

    def fmt_row(r: list[str]) -> str:
        return "| " + " | ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
        ) + " |"

    out = [fmt_row(rows[0]),
           "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"]
    out += [fmt_row(r) for r in rows[1:]]
    out.append("")
    out += [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    if notes:
        out.append("")
    out += footer
    return "\n".join(out)


def write_json(path: Path, *, meta: dict[str, Any], lines: list[Line],
               details: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "lines": [ln.as_dict() for ln in lines],
                                "details": details}, indent=2, default=str) + "\n")
