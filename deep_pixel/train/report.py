"""model_metrics.html: a stand-alone training report (inline SVG curves, base64 PNG samples)."""
from __future__ import annotations

import html
import math

import numpy as np

from ..io.pngimage import colorize, data_uri, encode_png, side_by_side, stretch_rgb


def _svg_curves(series: dict, title: str, width: int = 520, height: int = 220) -> str:
    """Line chart of named series (lists of numbers, None/NaN skipped) as inline SVG."""
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    pts = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if not pts:
        return f"<p>{html.escape(title)}: no values.</p>"
    lo, hi = min(pts), max(pts)
    hi = hi if hi > lo else lo + 1
    n = max(len(s) for s in series.values())
    ml, mr, mt, mb = 50, 10, 24, 28
    x = lambda i: ml + (width - ml - mr) * (i / max(n - 1, 1))   # noqa: E731
    y = lambda v: mt + (height - mt - mb) * (1 - (v - lo) / (hi - lo))   # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'style="background:#fff;border:1px solid #ccc">',
             f'<text x="{ml}" y="16" font-size="13">{html.escape(title)}</text>']
    for t in np.linspace(lo, hi, 4):
        parts.append(f'<line x1="{ml}" x2="{width - mr}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
                     f'<text x="4" y="{y(t) + 4:.1f}" font-size="10">{t:.3g}</text>')
    parts.append(f'<text x="{width / 2:.0f}" y="{height - 6}" font-size="10">epoch</text>')
    for k, (name, values) in enumerate(series.items()):
        c = colors[k % len(colors)]
        xy = [(x(i), y(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
        if xy:
            parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in xy) + '"/>')
            parts.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{c}"/>' for a, b in xy)
        parts.append(f'<text x="{width - 150}" y="{16 + 14 * k}" font-size="11" fill="{c}">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _members(log) -> str:
    """The averaged networks (MODEL_ARGUMENTS members), each with its seed and best epoch; '' for one network."""
    members = log.get("members")
    if not members:
        return ""
    each = ", ".join(f"seed {m['seed']}: best epoch {m['best_epoch']} of {m['epochs_run']}" for m in members)
    return (f"{len(members)} networks averaged ({html.escape(each)}; the curves show them one after another); "
            "the figures below are the average's. Last network: ")


def _fmt(v, pct=False):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    return f"{100 * v:.1f}" if pct else f"{v:.4g}"


def sample_picture(image, valid, reference, prediction, schema, rgb_bands) -> str:
    """image | reference | prediction as one base64 PNG data URI."""
    rgb = stretch_rgb(image, rgb_bands, valid)
    ref = colorize(reference, schema, background=(255, 255, 255))
    pred = colorize(prediction, schema)
    scale = max(1, 160 // max(image.shape[1:]))
    big = [np.kron(a, np.ones((scale, scale, 1), np.uint8)) for a in (rgb, ref, pred)]
    return data_uri(encode_png(side_by_side(big)))


def render_report(name: str, log: dict, summary: dict, schema, samples: list) -> str:
    epochs = log["epochs"]
    curves = _svg_curves({"training loss": [e["train_loss"] for e in epochs],
                          "validation loss": [e["valid_loss"] for e in epochs]}, "Loss per epoch")
    metric_curves = _svg_curves({"accuracy": [e["accuracy"] for e in epochs],
                                 "mIoU": [e["miou"] for e in epochs]}, "Validation accuracy and mIoU")
    names = {c.value: c.name for c in schema}
    rows = "".join(
        f"<tr><td><span style='background:rgb{tuple(schema.by_value(p['value']).color)}'>&nbsp;&nbsp;&nbsp;</span> "
        f"{html.escape(names.get(p['value'], str(p['value'])))} ({p['value']})</td><td>{_fmt(p['precision'], True)}</td>"
        f"<td>{_fmt(p['recall'], True)}</td><td>{_fmt(p['f1'], True)}</td><td>{_fmt(p['iou'], True)}</td>"
        f"<td>{p['support']}</td></tr>" for p in summary.get("per_class", []))
    values = summary.get("values", [])
    head = "".join(f"<th>{html.escape(names.get(v, str(v)))}</th>" for v in values) + "<th>other</th>"
    matrix = "".join(f"<tr><th>{html.escape(names.get(v, str(v)))}</th>"
                     + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
                     for v, row in zip(values, summary.get("matrix", [])))
    pictures = "".join(f"<figure><img src='{uri}' alt='sample {i}'/><figcaption>{html.escape(cap)}</figcaption></figure>"
                       for i, (uri, cap) in enumerate(samples))
    info = log["settings"]
    settings = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in info.items())
    where = "validation" if log.get("validation_chips") else "training (no separate validation chips)"
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Deep Pixel model {html.escape(name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}} th{{background:#f3f3f3}}
figure{{display:inline-block;margin:6px}} figcaption{{font-size:11px}}</style></head><body>
<h1>Model {html.escape(name)}</h1>
<p>{_members(log)}Best epoch {log['best_epoch']} of {len(epochs)} by {html.escape(log['monitor'])};
overall accuracy {_fmt(summary.get('overall_accuracy'), True)} %, kappa {_fmt(summary.get('kappa'))},
mIoU {_fmt(summary.get('mean_iou'), True)} % on {where} chips
({log.get('validation_chips', 0)} validation, {log.get('training_chips', 0)} training chips).
{"Stopped early: the monitored metric stopped improving." if log.get('stopped_early') else ""}</p>
<h2>Curves</h2>{curves} {metric_curves}
<h2>Per-class accuracy (best epoch, %)</h2>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>IoU</th><th>pixels</th></tr>{rows}</table>
<h2>Confusion matrix (rows: reference, columns: predicted; pixels)</h2>
<table><tr><th></th>{head}</tr>{matrix}</table>
<h2>Sample results: image | reference (white = unlabelled) | prediction</h2>{pictures}
<h2>Settings</h2><table>{settings}</table>
</body></html>
"""
