"""Compute Accuracy outputs: an HTML report (matrix table and picture), a JSON report, a CSV table."""
from __future__ import annotations

import csv
import html
import json
import os

import numpy as np

from ..io.pngimage import data_uri, encode_png
from ..core.errors import DeepPixelError
from ..io.destinations import Place, check_destinations
from ..io.staging import staged_file


def matrix_picture(matrix: np.ndarray, cell: int = 28) -> str:
    """The confusion matrix as a heat map (rows normalised: white 0 -> dark blue 1), PNG data URI."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    low, high = np.array([255, 255, 255.0]), np.array([8, 48, 107.0])
    rgb = (low + (high - low) * share[..., None]).astype(np.uint8)
    big = np.kron(rgb, np.ones((cell, cell, 1), np.uint8))
    big[::cell, :] = 200
    big[:, ::cell] = 200
    return data_uri(encode_png(big))


def _pct(v):
    return "&ndash;" if v is None else f"{100 * v:.1f}"


def render_html(result, classified: str, reference: str) -> str:
    s = result.summary
    values = s["values"]
    labels = [f"{v} {result.names.get(v, '')}".strip() for v in values]
    head = "".join(f"<th>{html.escape(lab)}</th>" for lab in labels) + "<th>unclassified</th><th>total</th>"
    body = []
    for i, lab in enumerate(labels):
        row = s["matrix"][i]
        cells = "".join(f'<td class="{"d" if j == i else ""}">{n}</td>' for j, n in enumerate(row))
        body.append(f"<tr><th>{html.escape(lab)}</th>{cells}<td>{sum(row)}</td></tr>")
    per = "".join(
        f"<tr><th>{html.escape(lab)}</th><td>{_pct(p['precision'])}</td><td>{_pct(p['recall'])}</td>"
        f"<td>{_pct(p['f1'])}</td><td>{_pct(p['iou'])}</td><td>{p['support']}</td></tr>"
        for lab, p in zip(labels, s["per_class"]))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Accuracy assessment</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}} td.d{{background:#dbe8f6;font-weight:bold}}
.big{{font-size:1.4em}}</style></head><body>
<h1>Accuracy assessment</h1>
<p>Classified raster: <code>{html.escape(classified)}</code><br>Reference: <code>{html.escape(reference)}</code><br>
Pixels evaluated: {s['pixels']} ({html.escape(s['sampling'])}); reference value 0 is ignored.</p>
<p class="big">Overall accuracy <b>{_pct(s['overall_accuracy'])}%</b> &middot; kappa <b>{'&ndash;' if s['kappa'] is None else f"{s['kappa']:.3f}"}</b>
&middot; mean IoU <b>{_pct(s['mean_iou'])}%</b></p>
<h2>Confusion matrix</h2><p>Rows: reference; columns: classified.</p>
<table><tr><th>reference \\ classified</th>{head}</tr>{''.join(body)}</table>
<img alt="confusion matrix, rows normalised" src="{matrix_picture(np.asarray(s['matrix'])[:, :len(values)])}">
<h2>Per class</h2>
<table><tr><th>class</th><th>precision (user's) %</th><th>recall (producer's) %</th><th>F1 %</th><th>IoU %</th>
<th>reference pixels</th></tr>{per}</table>
<h2>Notes</h2><ul>{notes or '<li>Both rasters share one grid; nothing was resampled.</li>'}</ul>
</body></html>
"""


TABLE_FIELDS = ("value", "name", "precision", "recall", "f1", "iou", "support")


def check_evaluate_destinations(classified: str, reference: str | None, reference_raster: str | None,
                                report: str | None, table: str | None) -> None:
    """Refuse, before any work, a report or table that would overwrite an input or each other."""
    if report and report.lower().endswith(".json"):
        raise DeepPixelError(f"OUTPUT_REPORT {report} would be replaced by the JSON report written beside it: "
                             "give an .html file name.")
    check_destinations([Place("INPUT_CLASSIFIED", classified, "raster"), Place.infer("REFERENCE", reference),
                        Place("REFERENCE_RASTER", reference_raster or "", "raster")],
                       [Place("OUTPUT_REPORT", report or "", "report"), Place.infer("OUTPUT_TABLE", table, folders=False)])
    for path in (report, report and os.path.splitext(report)[0] + ".json"):     # the table is replaced as asked
        if path and os.path.isfile(path) and not _earlier_report(path):
            raise DeepPixelError(f"OUTPUT_REPORT would replace {path}, which is not a report of Compute Accuracy "
                                 "(another tool's file, e.g. an export's or a model's). Nothing was written: choose "
                                 "another name or folder for OUTPUT_REPORT.")


def _earlier_report(path: str) -> bool:
    """Is this existing file one that Compute Accuracy wrote (so replacing it is what the user asked)?"""
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(4096)
            if not head.strip():
                return True                     # an empty file holds nothing to lose
            if path.lower().endswith(".json"):
                data = json.loads(head + f.read())
                return isinstance(data, dict) and {"classified", "per_class"} <= data.keys()
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return "<title>Accuracy assessment</title>" in head


def write_outputs(result, classified: str, reference: str, report: str | None, table: str | None) -> None:
    """Each file is written under a temporary name and renamed when complete."""
    check_evaluate_destinations(classified, reference, None, report, table)
    if report:
        with staged_file(report) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(render_html(result, classified, reference))
        result.output_report = report
        result.output_json = os.path.splitext(report)[0] + ".json"
        with staged_file(result.output_json) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"classified": classified, "reference": reference, "names": result.names,
                           "notes": result.notes, **result.summary}, f, indent=2)
    if table:
        with staged_file(table) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(TABLE_FIELDS)
                for p in result.summary["per_class"]:
                    w.writerow([p["value"], result.names.get(p["value"], ""), p["precision"], p["recall"],
                                p["f1"], p["iou"], p["support"]])
        result.output_table = table
