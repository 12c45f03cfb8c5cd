"""report.html: one self-contained page (inline CSS and SVG, no network) with
the summary, charts by check and by gate, the ranked queue, and every fix with
its diff and verdict."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from ..contracts import Detection, write_text_atomic
from ..defaults import tool_version
from ..verify.gates import GATE_NAMES
from .metrics import first_failed_gate

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2433;max-width:1200px}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border-bottom:1px solid #eee;padding:.3rem .5rem;text-align:left;vertical-align:top}
.kpis{display:flex;gap:1rem;flex-wrap:wrap}.kpi{background:#f4f6fa;border-radius:6px;padding:.6rem 1rem}.kpi b{display:block;font-size:1.4rem}
pre{background:#f8f8f8;padding:.5rem;overflow-x:auto;font-size:.8rem}.ok{color:#177245}.bad{color:#b42318}
details summary{cursor:pointer}.add{color:#177245}.del{color:#b42318}
.meta{color:#555}.legend{display:grid;grid-template-columns:auto 1fr;gap:.2rem 1rem;font-size:.85rem}.legend dt{font-weight:bold}.legend dd{margin:0}
"""


def _e(value) -> str:
    return html.escape(str(value))


def bar_chart(title: str, counts: dict[str, int], colour: str = "#3b6fd8") -> str:
    """A horizontal bar chart as inline SVG."""
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:25]
    if not rows:
        return f"<p>{_e(title)}: nothing to show.</p>"
    top = max(v for _, v in rows) or 1
    height = 22 * len(rows) + 10
    bars = []
    for i, (label, value) in enumerate(rows):
        y = 5 + i * 22
        width = 420 * value / top
        bars.append(
            f'<text x="0" y="{y + 14}" font-size="12">{_e(label)}</text>'
            f'<rect x="260" y="{y}" width="{width:.1f}" height="16" fill="{colour}"/>'
            f'<text x="{265 + width:.1f}" y="{y + 13}" font-size="12">{value}</text>'
        )
    return f'<figure><figcaption>{_e(title)}</figcaption><svg role="img" width="760" height="{height}">{"".join(bars)}</svg></figure>'


def _diff_html(diff: str) -> str:
    lines = []
    for line in diff.splitlines():
        cls = "add" if line.startswith("+") and not line.startswith("+++") else "del" if line.startswith("-") and not line.startswith("---") else ""
        lines.append(f'<span class="{cls}">{_e(line)}</span>' if cls else _e(line))
    return "<pre>" + "\n".join(lines) + "</pre>"


LEGEND = (
    ("score", "the queue's order: R &times; p / E[t], plus exploration, ageing and a bonus for a known-exploited image"),
    ("R", "the finding's risk, 0 to 1: severity, exposure, EPSS and KEV of its image"),
    ("p", "the probability that a reviewer accepts the fix (from the verifier's record of the check, and past reviews)"),
    ("E[t]", "the expected minutes to review the fix (by applicability and patch size, and past reviews)"),
)


def write_report(path, detections, patches, verdicts, schedule, risks, metrics, diffs, inputs: Sequence[str] = (), now: datetime | None = None) -> None:
    by_check = Counter(d.policy_id for d in detections)
    by_gate = Counter(first_failed_gate(v) for v in verdicts if not v.accepted)
    # A gate no verdict ran (the rescan, unless asked for) is no gate that rejected nothing.
    gates_run = [g for g in GATE_NAMES if any(v.gates.get(g) is not None for v in verdicts)]
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    verdict_of = {v.id: v for v in verdicts}
    detection_of = {d.id: d for d in detections}
    risk_of = {r.id: r for r in risks}
    kpis = [
        ("findings", metrics["detections"]),
        ("patches verified", metrics["verified"]),
        ("accepted", metrics["accepted"]),
        ("auto-fix rate", f"{(metrics['auto_fix_rate'] or 0) * 100:.1f}%"),
        ("manual", metrics["manual"]),
        ("median patch ops", metrics["median_patch_ops"]),
    ]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>k8s-auto-fix report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>k8s-auto-fix report</h1>",
        f'<p class="meta">input: {_e(", ".join(inputs) or "-")} &middot; {_e(when)} &middot; k8s-auto-fix {_e(tool_version())}</p>',
        '<section id="summary"><h2>Summary</h2><div class="kpis">'
        + "".join(f'<div class="kpi">{_e(k)}<b>{_e(v)}</b></div>' for k, v in kpis)
        + "</div></section>",
        '<section id="charts"><h2>Charts</h2>'
        + bar_chart("Findings by check", dict(by_check))
        + bar_chart("Rejections by gate", {g: by_gate.get(g, 0) for g in gates_run}, "#b42318")
        + "</section>",
        '<section id="queue"><h2>Ranked queue</h2><table><tr><th>#</th><th>score</th><th>check</th><th>object</th><th>R</th><th>p</th><th>E[t] min</th><th>KEV</th></tr>',
    ]
    for rank, item in enumerate(schedule, 1):
        d = detection_of.get(item.id)
        target = f"{d.object.kind}/{d.object.name}" + (f" [{d.container}]" if d and d.container else "") if d else item.id
        parts.append(
            f"<tr><td>{rank}</td><td>{item.score:.4f}</td><td>{_e(item.policy_id)}</td><td>{_e(target)}</td>"
            f"<td>{item.R}</td><td>{item.p}</td><td>{item.Et}</td><td>{'yes' if item.kev else ''}</td></tr>"
        )
    parts.append("</table>")
    parts.append("<dl class=legend>" + "".join(f"<dt>{_e(term)}</dt><dd>{text}</dd>" for term, text in LEGEND) + "</dl>")
    parts.append("</section>")
    parts.append('<section id="findings"><h2>Findings and fixes</h2><table><tr><th>location</th><th>check</th><th>severity</th><th>risk</th><th>message</th><th>fix</th></tr>')
    patch_of = {p.id: p for p in patches}
    for d in detections:
        patch, verdict, risk = patch_of.get(d.id), verdict_of.get(d.id), risk_of.get(d.id)
        if verdict is not None:
            state = '<span class="ok">accepted</span>' if verdict.accepted else f'<span class="bad">rejected ({_e(first_failed_gate(verdict))})</span>'
            diff = _diff_html(diffs[d.id]) if d.id in diffs else "<p>(diff shown for the head of the queue only)</p>"
            fix = f"<details><summary>{state} · {_e(patch.applicability.value)}</summary>{diff}</details>"
        elif patch is not None:
            fix = f"{_e(patch.applicability.value)}: {_e(patch.explanation)}"
        else:
            fix = "no automatic fix"
        parts.append(
            f"<tr><td>{_e(d.where)}<br>{_e(d.object.kind)}/{_e(d.object.name)}{_pointer_html(d)}</td><td>{_e(d.policy_id)}</td>"
            f"<td>{_e(d.severity.value)}</td><td>{risk.risk if risk else ''}</td><td>{_e(d.violation_text)}</td><td>{fix}</td></tr>"
        )
    parts.append("</table></section></body></html>")
    write_text_atomic(Path(path), "\n".join(parts))


def _pointer_html(d: Detection) -> str:
    """The offending field, as a JSON Pointer."""
    return f"<br><code>{_e(d.json_pointer)}</code>" if d.json_pointer else ""
