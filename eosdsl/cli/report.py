"""``eosdsl report``: one self-contained HTML page of a stored run or sweep.

The page holds everything ``eosdsl show`` prints — the spec (and the numbers its expressions resolve
to), checks with their statistics, events, a sweep's members with key summaries — plus the figures
``eosdsl plot`` draws, embedded as base64 PNGs, and the run's provenance. It needs nothing beside
itself: no external CSS, JavaScript or fonts, so it opens offline and can be mailed or archived. Every
piece of stored text (names, labels, details, spec strings) is HTML-escaped.

No jax: the figures come from :mod:`eosdsl.plot` (matplotlib, Agg) and the rest from the stored JSON.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eosdsl.cli.common import RegistryOption, app, distinct_names, err, fail, open_registry, out

if TYPE_CHECKING:
    from eosdsl.registry.sweeps import Summary, Sweep

__all__ = ["report", "run_report", "sweep_report"]

MAX_SWEEP_CHECK_SUMMARIES = 4
"""Most ``check.NAME`` columns a sweep's members table adds beside the series summaries."""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;margin-top:1.8em}
h3{font-size:1em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .5em;
vertical-align:top;text-align:left}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.7em;overflow-x:auto;font-size:13px}
code,pre,td.mono{font-family:ui-monospace,Menlo,Consolas,monospace}
.k{color:#1f4e9a}.pass{color:#17803d;font-weight:bold}.fail{color:#b91c1c;font-weight:bold}
.na{color:#777}.muted{color:#666}.stats{font-size:12px;color:#444}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:12px}.wrap{word-break:break-all}
"""

# ------------------------------------------------------------------------------------------- pieces


def _e(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool] = ()) -> str:
    """A table; ``headers`` are escaped here, row cells are HTML already (escape them first)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = [
            f'<td class="num">{cell}</td>' if i < len(numeric) and numeric[i] else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _pairs(items: Iterable[tuple[str, Any]]) -> str:
    """A two-column key/value table; nested values flattened to dotted keys, lists as JSON."""
    rows = []
    for key, value in items:
        if isinstance(value, Mapping) and value:
            rows += [(f"{key}.{k}", v) for k, v in _flat(value)]
        else:
            rows.append((key, value))
    cells = []
    for key, value in rows:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        cells.append([f"<code>{_e(key)}</code>", f'<span class="wrap">{_e(text)}</span>'])
    return _table(["field", "value"], cells) if cells else '<p class="muted">none recorded</p>'


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items += _flat(value, f"{path}.")
        else:
            items.append((path, value))
    return items


_KEY = re.compile(r"^(\s*(?:- )?)([A-Za-z_][\w.\-]*)(:)(?=\s|$)", re.M)


def _yaml_block(document: Any) -> str:
    """A spec as escaped YAML with its keys coloured (light syntax highlighting)."""
    from eosdsl.cli.inspect import _yaml

    text = _e(_yaml(document))
    return "<pre>" + _KEY.sub(r'\1<span class="k">\2</span>\3', text) + "</pre>"


def _resolved_rows(spec: Mapping[str, Any]) -> list[list[str]]:
    """``path | expression | number`` for each spec string that resolves to a number."""
    from eosdsl.api import resolve_expressions
    from eosdsl.registry.index import flatten

    try:
        resolved = dict(flatten(resolve_expressions(spec)))
    except Exception:  # noqa: BLE001 — a damaged spec still gets a report, without this table
        return []
    rows = []
    for path, raw in flatten(dict(spec)):
        number = resolved.get(path)
        if isinstance(raw, str) and isinstance(number, int | float) and not isinstance(number, bool):
            rows.append([f"<code>{_e(path)}</code>", f"<code>{_e(raw)}</code>", _e(_num(number))])
    return rows


def _spec_section(spec: Mapping[str, Any] | None, title: str = "Spec") -> str:
    if not isinstance(spec, Mapping):
        return f'<h2>{_e(title)}</h2><p class="muted">not recorded</p>'
    parts = [f"<h2>{_e(title)}</h2>", _yaml_block(dict(spec))]
    rows = _resolved_rows(spec)
    if rows:
        parts.append("<h3>Expressions resolved</h3>")
        parts.append(_table(["field", "expression", "value (float64)"], rows, [False, False, True]))
    return "".join(parts)


def _mark(check: Mapping[str, Any]) -> str:
    if not check.get("applicable", True):
        return '<span class="na">n/a</span>'
    return '<span class="pass">✓ pass</span>' if check.get("passed") else '<span class="fail">✗ fail</span>'


def _stats(values: Any) -> str:
    """A check's statistics, ``stat[group]`` ones as a small table (a row per group)."""
    if not isinstance(values, Mapping) or not values:
        return ""
    from eosdsl.cli.inspect import check_value_table

    plain, stats, table = check_value_table(values)
    text = (
        f'<div class="stats">{", ".join(f"{_e(k)} = {_e(_num(v))}" for k, v in plain)}</div>' if plain else ""
    )
    if table:
        rows = [[_e(group), *(_e(_num(row.get(s))) for s in stats)] for group, row in table]
        text += _table(["group", *stats], rows, [False, *([True] * len(stats))])
    return text


def _checks_section(checks: Any, title: str, judged: str = "") -> str:
    checks = [c for c in checks or [] if isinstance(c, Mapping)]
    if not checks:
        return f'<h2>{_e(title)}</h2><p class="muted">no checks</p>'
    passed = sum(bool(c.get("passed")) for c in checks)
    names = distinct_names([str(c.get("name", "?")) for c in checks])
    rows = [
        [
            _mark(check),
            f"<code>{_e(name)}</code>",
            _e(_num(check.get("margin"))),
            _e(check.get("detail", "")) + _stats(check.get("values")),
        ]
        for check, name in zip(checks, names, strict=True)
    ]
    head = f"<h2>{_e(title)} ({passed}/{len(checks)} passed)</h2>"
    note = f'<p class="muted">{_e(judged)}</p>' if judged else ""
    return head + note + _table(["", "check", "margin", "detail and statistics"], rows, [False, False, True])


def _events_section(info: Mapping[str, Any]) -> str:
    events = [e for e in info.get("events") or [] if isinstance(e, Mapping)]
    if not events:
        return '<h2>Events</h2><p class="muted">no events</p>'
    rows = []
    for event in events:
        fired = event.get("fired_at")
        state = (
            f'<span class="pass">fired at step {_e(fired)}</span>'
            if fired is not None
            else '<span class="na">did not fire</span>'
        )
        rows.append([f"<code>{_e(event.get('name'))}</code>", _e(event.get("kind") or ""), state])
    return "<h2>Events</h2>" + _table(["event", "kind", "fired"], rows)


def _png(fig: Any) -> tuple[str, int, int]:
    """A figure as a base64 PNG with its pixel size; the figure is closed."""
    import matplotlib.pyplot as plt

    from eosdsl.plot.common import DPI

    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=DPI, format="png")
        width, height = (round(v) for v in fig.get_size_inches() * DPI)
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), width, height


def _figure(fig: Any, caption: str) -> str:
    data, width, height = _png(fig)
    return (
        f'<figure><img alt="{_e(caption)}" width="{width}" height="{height}" '
        f'src="data:image/png;base64,{data}"><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _figures(builders: Iterable[tuple[str, Callable[[], Any]]]) -> str:
    """The figures the builders return (``None``: nothing to draw); a builder that fails is a note."""
    parts = []
    for caption, build in builders:
        try:
            fig = build()
        except Exception as error:  # noqa: BLE001 — one figure failing never loses the report
            parts.append(f'<p class="muted">{_e(caption)}: not drawn ({_e(error)})</p>')
            continue
        if fig is not None:
            parts.append(_figure(fig, caption))
    return "<h2>Figures</h2>" + ("".join(parts) or '<p class="muted">no figures for this run</p>')


def _page(title: str, body: str) -> str:
    from eosdsl import __version__

    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}"
        f'<hr><p class="muted">written by eosdsl {_e(__version__)} — <code>eosdsl report</code></p>'
        "</body></html>\n"
    )


# ------------------------------------------------------------------------------------------- run


def _summaries_section(run: Any) -> str:
    from eosdsl.registry.index import run_summaries

    summaries = run_summaries(run)
    if not summaries:
        return ""
    rows = []
    for name, s in summaries.items():
        rows.append(
            [
                f"<code>{_e(name)}</code>",
                _e(s["count"]),
                _e(f"{_num(s['final'])} @ {s['final_step']}" if s["count"] else "—"),
                _e(f"{_num(s['min'])} @ {s['argmin']}" if s["min"] is not None else "—"),
                _e(f"{_num(s['max'])} @ {s['argmax']}" if s["max"] is not None else "—"),
            ]
        )
    return "<h2>Series</h2>" + _table(["series", "values", "final", "min", "max"], rows, [False, *[True] * 4])


def _run_figures(run: Any) -> str:
    from eosdsl.plot import run_plots

    return _figures(
        [
            ("loss", lambda: run_plots.loss_figure(run)),
            ("sharpness", lambda: run_plots.sharpness_figure(run)),
            ("trajectory in the parameter plane", lambda: run_plots.params_figure(run)),
            ("learning rate", lambda: run_plots.lr_figure(run)),
        ]
    )


def _provenance_section(run: Any, spec: Mapping, env: Mapping, info: Mapping) -> str:
    verdict = run.verdict if isinstance(run.verdict, Mapping) else {}
    identity = [
        ("run key", run.run_key),
        ("spec id", info.get("spec_id")),
        ("status", info.get("status")),
        ("end step", info.get("end_step")),
        ("stop cause", info.get("stop_cause")),
        ("started at", info.get("started_at")),
        ("finished at", info.get("finished_at")),
        ("resumed from", info.get("resumed_from")),
        ("judged at", verdict.get("evaluated_at")),
        ("judged by eosdsl", verdict.get("eosdsl")),
        ("path", str(run.path)),
    ]
    parts = ["<h2>Provenance</h2>", _pairs((k, v) for k, v in identity if v is not None)]
    for title, value in (
        ("References", info.get("references")),
        ("Timings", info.get("timings")),
        ("Execution", info.get("execution")),
        ("Data", info.get("data")),
        ("Environment", env),
        ("Machine and versions", info.get("provenance")),
    ):
        if isinstance(value, Mapping) and value:
            parts += [f"<h3>{_e(title)}</h3>", _pairs(value.items())]
    return "".join(parts)


def run_report(run: Any) -> str:
    """The HTML page of a stored run (a :class:`~eosdsl.registry.StoredRun`)."""
    from eosdsl.cli.inspect import _read_run

    spec, env, info = _read_run(run)
    verdict = run.verdict
    judged = f"judged {verdict.get('evaluated_at')} by eosdsl {verdict.get('eosdsl')}" if verdict else ""
    status = f"{info.get('status', run.status)} at step {info.get('end_step')}"
    if info.get("stop_cause"):
        status += f" (stopped by {info['stop_cause']})"
    header = (
        f"<h1>run {_e(run.short_id)} — {_e(run.name or '?')}</h1>"
        f"<p>{_e(status)} · run key <code>{_e(run.run_key)}</code> · spec id "
        f"<code>{_e(info.get('spec_id', '?'))}</code></p>"
    )
    body = [
        header,
        _checks_section(run.checks, "Checks", judged),
        _events_section(info),
        _summaries_section(run),
        _run_figures(run),
        _spec_section(spec),
        _provenance_section(run, spec, env, info),
    ]
    return _page(f"eosdsl run {run.short_id} {run.name or ''}", "".join(body))


# ------------------------------------------------------------------------------------------- sweep


def _sweep_summaries(sweep: Sweep, texts: Sequence[str]) -> list[Summary]:
    """The named summaries, else the default ones plus the first few checks."""
    from eosdsl.registry.sweeps import default_summaries, parse_summaries

    if texts:
        return parse_summaries(texts, sweep)
    names = [name for name in sweep.check_names() if "`" not in name][:MAX_SWEEP_CHECK_SUMMARIES]
    return [*default_summaries(sweep), *parse_summaries([_check_summary(name) for name in names], sweep)]


def _check_summary(name: str) -> str:
    """``check.NAME`` as a query field: a name that is not one plain word (``final sharpness``,
    ``a.margin``) is backquoted, as ``show -s`` wants it."""
    return f"check.{name}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"check.`{name}`"


def _summary_html(value: Any) -> str:
    if isinstance(value, bool):
        return '<span class="pass">✓</span>' if value else '<span class="fail">✗</span>'
    return "" if value is None else _e(_num(value))


def _members_section(sweep: Sweep, summaries: Sequence[Summary]) -> str:
    from eosdsl.cli.inspect import _member_columns, _short
    from eosdsl.registry.sweeps import summary_value

    columns = _member_columns(sweep)
    rows = []
    for member in sweep.members:
        status = member.status
        style = {"completed": "", "diverged": "fail"}.get(status, "na")
        rows.append(
            [
                *(_e(member.label if c == "label" else _short(member.value(c), 40)) for c in columns),
                f"<code>{_e(member.run_key[:12])}</code>",
                f'<span class="{style}">{_e(status)}</span>',
                *(_summary_html(summary_value(member.run, s)) for s in summaries),
            ]
        )
    numeric = [False] * (len(columns) + 2) + [True] * len(summaries)
    table = _table([*columns, "run", "status", *(s.text for s in summaries)], rows, numeric)
    notes = "".join(
        f'<p class="fail">{_e(member.label)} failed: {_e(member.error)}</p>'
        for member in sweep.members
        if member.error
    )
    counts: dict[str, int] = {}
    for member in sweep.members:
        counts[member.status] = counts.get(member.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"<h2>Members ({len(sweep.members)}: {_e(tally)})</h2>" + table + notes


def _sweep_figures(sweep: Sweep, summaries: Sequence[Summary]) -> str:
    """Phase diagrams: each series summary against the swept axes, and a heatmap of the first one."""
    from eosdsl.plot.sweep_plots import SweepPlotOptions, sweep_curves, sweep_heatmap

    def curves(text: str, logy: bool) -> Any:
        return sweep_curves(sweep, SweepPlotOptions(value=text, logy=logy))[0]

    def heatmap(text: str, logz: bool) -> Any:
        return sweep_heatmap(sweep, SweepPlotOptions(value=text, heatmap=True, logz=logz))[0]

    series = [s.text for s in summaries if s.field.kind == "summary"]
    builders: list[tuple[str, Callable[[], Any]]] = []
    for text in series:
        log = "loss" in text
        builders.append((f"{text} against the swept axes", lambda t=text, lg=log: curves(t, lg)))
    if series and len([*sweep.axes, *(["case"] if sweep.cases else [])]) >= 2:
        text = series[0]
        builders.append((f"{text} heatmap", lambda t=text, lg="loss" in text: heatmap(t, lg)))
    return _figures(builders)


def sweep_report(sweep: Sweep, summaries: Sequence[Summary] | None = None) -> str:
    """The HTML page of a sweep (:func:`eosdsl.registry.sweeps.load_sweep`)."""
    summaries = list(summaries) if summaries is not None else _sweep_summaries(sweep, [])
    header = (
        f"<h1>sweep {_e(sweep.short_id)} — {_e(sweep.name)}</h1>"
        f"<p>created {_e(sweep.created_at)} · sweep id <code>{_e(sweep.sweep_id)}</code> · axes: "
        f"{_e(', '.join([*sweep.axes, *(['case'] if sweep.cases else [])]) or 'none recorded')}</p>"
    )
    runs = sweep.runs()
    first = runs[0] if runs else None
    provenance = [("sweep id", sweep.sweep_id), ("name", sweep.name), ("created at", sweep.created_at)]
    provenance += [("axes", list(sweep.axes)), ("cases", sweep.cases), ("members", len(sweep.members))]
    parts = [
        header,
        _members_section(sweep, summaries),
        _checks_section(list(sweep.checks), "Sweep checks"),
        _sweep_figures(sweep, summaries),
        _spec_section(sweep.spec, "Base spec"),
        "<h2>Provenance</h2>",
        _pairs(provenance),
    ]
    if first is not None:
        info = first.info if isinstance(first.info, Mapping) else {}
        env = first.env if isinstance(first.env, Mapping) else {}
        parts.append(f"<h3>Environment (of the first member run, {_e(first.short_id)})</h3>")
        parts.append(_pairs(env.items()))
        if isinstance(info.get("provenance"), Mapping):
            parts.append("<h3>Machine and versions (of the first member run)</h3>")
            parts.append(_pairs(info["provenance"].items()))
    return _page(f"eosdsl sweep {sweep.short_id} {sweep.name}", "".join(parts))


# ------------------------------------------------------------------------------------------- command


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="Run or sweep id (a unique prefix).")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="The HTML file (default <registry>/reports/<id>.html).")
    ] = None,
    summary: Annotated[
        list[str] | None,
        typer.Option(
            "--summary",
            "-s",
            help="Sweeps: a members-table column per summary, e.g. final.test_loss (repeat; default "
            "final.sharpness, final.loss and the checks).",
        ),
    ] = None,
    registry: RegistryOption = None,
) -> None:
    """Write one self-contained HTML page of a stored run or sweep: spec, checks, events, members,
    figures and provenance (opens offline; figures are embedded PNGs)."""
    from eosdsl.cli.lookup import resolve_any
    from eosdsl.registry.sweeps import SummaryError

    reg = open_registry(registry)
    kind, found = resolve_any(reg, run_id)
    if kind == "sweep":
        try:
            summaries = _sweep_summaries(found, summary or [])
        except SummaryError as error:
            fail(str(error))
        page = sweep_report(found, summaries)
    elif summary:
        fail(f"--summary is for sweeps; {run_id!r} is a run")
    else:
        page = run_report(found)
    target = out_file or reg.root / "reports" / f"{found.short_id}.html"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
    except OSError as error:
        err.print(f"cannot write {target}: {error}", markup=False)
        raise typer.Exit(1) from None
    out.print(str(target), markup=False)
