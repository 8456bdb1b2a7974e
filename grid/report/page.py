"""The report's HTML page: one self-contained file beside its figures folder."""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone

import pandas as pd
import yaml

from grid.report.figures import Figure
from grid.report.results import Results

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:.92em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0} td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.missing{background:#fff4e5;border-left:4px solid #f0a030;padding:.5em 1em}
.ok{background:#eef8ee;border-left:4px solid #4a4;padding:.5em 1em}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:12px} details{margin:.3em 0 1em}
nav a{margin-right:1em}
"""

# A page that checks its own images: the browser test reads these attributes from the DOM.
_IMAGE_CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""


def _table(frame: pd.DataFrame, max_rows: int = 200) -> str:
    if frame.empty:
        return "<p><em>empty</em></p>"
    more = f"<p><em>{len(frame) - max_rows} more rows in the Parquet table</em></p>" if len(frame) > max_rows else ""
    return frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0) + more


def _figure_html(fig: Figure) -> str:
    return (
        f'<section id="{fig.name}"><h2>{html.escape(fig.title)}</h2><figure>'
        f'<img src="figures/{fig.name}.png" alt="{html.escape(fig.title)}">'
        f"<figcaption>{html.escape(fig.caption)} "
        f'<a href="figures/{fig.name}.svg">SVG</a> · <a href="figures/{fig.name}.png">PNG</a></figcaption></figure>'
        f"<details><summary>the numbers ({len(fig.data)} rows)</summary>{_table(fig.data)}</details></section>"
    )


def _provenance_html(res: Results) -> str:
    p = res.provenance
    if not p:
        return '<p class="missing">No provenance record in this folder.</p>'
    facts = {
        k: p.get(k)
        for k in (
            "run_name",
            "fingerprint",
            "status",
            "created",
            "updated",
            "job_file",
            "tune_seconds",
            "command",
            "ratings",
            "norms",
        )
        if p.get(k) is not None
    }
    versions = p.get("versions", {})
    parts = [_table(pd.DataFrame({"": list(facts), "value": [str(v) for v in facts.values()]}))]
    if versions:
        parts.append(
            "<h3>Software and machine</h3>"
            + _table(pd.DataFrame({"package": list(versions), "version": [str(v) for v in versions.values()]}))
        )
    for key, title in (("splits", "Train/test splits (hash of the concept lists)"), ("n_concepts", "Concepts")):
        if p.get(key):
            parts.append(f"<h3>{title}</h3><pre>{html.escape(json.dumps(p[key], indent=1))}</pre>")
    if p.get("job"):
        parts.append("<h3>Job</h3><pre>" + html.escape(yaml.safe_dump(p["job"], sort_keys=False)) + "</pre>")
    if p.get("options"):
        parts.append("<h3>Options</h3><pre>" + html.escape(json.dumps(p["options"], indent=1)) + "</pre>")
    return "".join(parts)


def render_page(
    res: Results,
    figures: list[Figure],
    missing: list[str],
    best: pd.DataFrame,
    objectives: pd.DataFrame | None = None,
    differences: pd.DataFrame | None = None,
    seeds: pd.DataFrame | None = None,
) -> str:
    """The report page's HTML text."""
    title = f"egrid report: {res.name}"
    status = (
        (
            '<p class="missing"><strong>Incomplete:</strong></p><ul class="missing">'
            + "".join(f"<li>{html.escape(m)}</li>" for m in missing)
            + "</ul>"
        )
        if missing
        else '<p class="ok">Complete: every table and figure is present.</p>'
    )
    nav = "".join(f'<a href="#{f.name}">{html.escape(f.title)}</a>' for f in figures)
    shown = "".join(
        f"<li><code>{html.escape(k)}</code> shown as <strong>{html.escape(v)}</strong></li>"
        for k, v in res.labels.items()
    )
    best_html = f"<h3>Best trial per objective</h3>{_table(best)}" if not best.empty else ""
    if objectives is not None and not objectives.empty:
        best_html += "<h3>Best trial per objective on held-out concepts (95 % bootstrap CIs)</h3>" + _table(
            objectives.reset_index()
        )
    if differences is not None and not differences.empty:
        best_html += (
            "<h3>Paired differences (a − b; the same concepts or questions resampled together; "
            "* the 95 % CI excludes 0)</h3>" + _table(differences.reset_index())
        )
    body = "".join(_figure_html(f) for f in figures if f.name != "search")
    if seeds is not None and not seeds.empty:
        body += (
            '<section id="seeds"><h2>Training seeds</h2><p>Each best configuration run with several training '
            "seeds: every seed's held-out figures, their mean and their spread (standard deviation) across seeds. "
            "Read the spread beside the bootstrap CIs: a difference smaller than it is within what a seed "
            "changes.</p>" + _table(seeds) + "</section>"
        )
    search = next((f for f in figures if f.name == "search"), None)
    search_html = _figure_html(search).replace("</section>", best_html + "</section>") if search else ""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{html.escape(res.kind)} folder <code>{html.escape(str(res.root if isinstance(res.root, str) else res.root.resolve()))}</code>; report generated {generated}.</p>
{status}
<p>Condition figures show:</p><ul>{shown}</ul>
<nav>{nav}<a href="#provenance">Provenance</a></nav>
{body}{search_html}
<section id="provenance"><h2>Provenance</h2>{_provenance_html(res)}</section>
{_IMAGE_CHECK}
</body></html>
"""
