"""Text and HTML reports of :class:`~pbitsim.diagnostics.compare.Comparison` (with PNG plots).

Kept apart from the statistics so that the numbers live in one module and the presentation in
another; matplotlib (Agg) is imported only when a report is written.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

__all__ = ["text_report", "html_report"]


def _pm(x, e, digits: int = 4) -> str:
    if x is None:
        return "-"
    if e is None or not np.isfinite(e):
        return f"{x:.{digits}g}"
    return f"{x:.{digits}g} ± {e:.2g}"


def _side_rows(cmp) -> list[tuple[str, str, str]]:
    """(quantity, A, B) rows: tau_int, Q, beta_eff, KL and moment distance side by side."""
    sides = [cmp.a] + ([cmp.b] if cmp.b is not None else [])
    rows = []
    names = list(dict.fromkeys(k for s in sides for k in s.series))
    for name in names:
        cells = []
        for s in sides:
            it = s.series.get(name)
            if it is None:
                cells.append("-")
            else:
                which = f" {it.name.split()[-1]}" if it.name != name else ""
                untrusted = "" if it.trusted else " (untrusted)"
                cells.append(_pm(it.tau, it.tau_err, 3) + which + untrusted)
        rows.append((f"tau_int {name} [draws]", *cells))
    rows.append(("joint test thinning", *[str(s.joint_thin) for s in sides]))
    other = "B's" if cmp.b is not None else "exact"
    rows.append(
        (
            f"Q of the moment estimates vs {other} moments",
            *[_pm(s.q.q, s.q.q_err, 3) if s.q is not None else "-" for s in sides],
        )
    )
    if cmp.a.beta_eff is not None:
        cells = [_pm(s.beta_eff, s.beta_eff_err) for s in sides]
        if cmp.b is None:
            beta_stat = next((x for x in cmp.statistics if x.name == "beta_eff"), None)
            cells.append(f"{beta_stat.b:.4g} (exact)" if beta_stat is not None else "-")
        rows.append((f"beta_eff ({cmp.a.beta_method})", *cells))
    refs = list(dict.fromkeys(k for s in sides for k in s.exact))
    for ref in refs:
        cells = []
        for s in sides:
            f = s.exact.get(ref)
            cells.append(
                "-"
                if f is None
                else f"{_pm(f.kl, f.kl_err, 3)} (exact: {f.kl_iid:.2g}–{f.kl_expected:.2g})"
            )
        rows.append((f"KL(empirical ‖ {ref}) [nats]", *cells))
        cells = []
        for s in sides:
            f = s.exact.get(ref)
            cells.append("-" if f is None else _pm(f.distance, f.distance_err, 3))
        rows.append((f"moment distance to {ref}", *cells))
    return rows


def _inputs(cmp) -> list[str]:
    out = []
    for s in [cmp.a] + ([cmp.b] if cmp.b is not None else []):
        out.append(
            f"{s.label}: {s.source} [method {s.method}, {s.replicas} x {s.draws} draws, "
            f"n = {s.n}, thin {s.thin}, couplings {s.fingerprint[:12]}]"
        )
    if cmp.b is None:
        out.append(f"B: the exact {cmp.reference_description}")
    return out


def _joint_line(cmp) -> str:
    j = cmp.joint
    if j is None:
        return "joint distribution: not tested"
    stat = (
        f"G = {j.statistic:.4g}, {j.dof} dof" if j.name == "G-test" else f"MMD² = {j.statistic:.3g}"
    )
    return f"joint distribution: {j.name} {stat}, p = {j.p_value:.3g} ({j.detail})"


def _top(cmp, top: int) -> list:
    return sorted(cmp.statistics, key=lambda s: -abs(s.z))[:top]


def text_report(cmp, top: int = 12) -> str:
    lines = _inputs(cmp)
    rows = _side_rows(cmp)
    w = max(len(r[0]) for r in rows)
    heads = ["A"] + (["B"] if cmp.b is not None else ["exact"])
    lines.append(f"{'':<{w}}  " + "  ".join(f"{h:<26}" for h in heads))
    for r in rows:
        lines.append(f"{r[0]:<{w}}  " + "  ".join(f"{c:<26}" for c in r[1:]))
    lines.append(_joint_line(cmp))
    kinds = [s.kind for s in cmp.statistics]
    lines.append(
        f"statistics: {kinds.count('mean')} means, {kinds.count('correlation')} correlations"
        + (", beta_eff" if "beta" in kinds else "")
        + f"; Holm at {cmp.alpha_moments:g}; largest |z|:"
    )
    lines.append(
        f"  {'statistic':<14} {'A':>9} {'±':>8} {'B' if cmp.b is not None else 'exact':>9} "
        f"{'±':>8} {'z':>7} {'p (Holm)':>9}"
    )
    for s in _top(cmp, top):
        lines.append(
            f"  {s.name:<14} {s.a:9.4f} {s.a_err:8.4f} {s.b:9.4f} {s.b_err:8.4f} {s.z:7.2f} "
            f"{s.p_holm:9.3g}" + ("  DIFFERS" if s.differs else "")
        )
    lines += [f"note: {n}" for n in cmp.notes]
    lines.append(cmp.verdict())
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# HTML and PNG.
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 1em auto; color: #222; }
.verdict { padding: 0.6em 1em; border-radius: 6px; font-weight: bold; }
.ok { background: #e3f5e1; border: 1px solid #5a5; }
.bad { background: #fbe3e1; border: 1px solid #c55; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
tr.differs td { background: #fbe3e1; }
img { max-width: 100%; }
.notes { color: #555; }
"""


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _plot_moments(cmp, path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    ax = axes[0]
    other = "B" if cmp.b is not None else "exact"
    stats = [s for s in cmp.statistics if s.kind != "beta"]
    for kind, marker in (("mean", "o"), ("correlation", "s")):
        label = "<s_i>" if kind == "mean" else "<s_i s_j>"
        for bad in (False, True):
            sel = [s for s in stats if s.kind == kind and s.differs == bad]
            if not sel:
                continue
            ax.errorbar(
                [s.b for s in sel],
                [s.a for s in sel],
                xerr=[2 * s.b_err for s in sel],
                yerr=[2 * s.a_err for s in sel],
                fmt=marker,
                ms=6 if bad else 4,
                color="C3" if bad else ("C0" if kind == "mean" else "C2"),
                alpha=0.85,
                capsize=2,
                lw=0.8,
                label=f"{label} differs" if bad else label,
            )
    vals = [v for st in stats for v in (st.a, st.b)]
    lo, hi = (min(vals), max(vals)) if vals else (-1.0, 1.0)
    pad = 0.08 * max(hi - lo, 0.05)
    lim = [max(-1.05, lo - pad), min(1.05, hi + pad)]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.set(
        xlim=lim,
        ylim=lim,
        xlabel=f"{other} value",
        ylabel="A value",
        title=f"moments: A vs {other} (bars: ±2 SE, tau-corrected)",
    )
    ax.legend(fontsize=8, loc="upper left")
    ax = axes[1]
    z = np.array([s.z for s in cmp.statistics])
    zc = np.clip(z, -50, 50)
    colors = ["C3" if s.differs else "C0" for s in cmp.statistics]
    ax.scatter(np.arange(len(z)), zc, c=colors, s=14)
    from scipy.stats import norm

    K = max(1, len(z))
    zcrit = float(norm.isf(cmp.alpha_moments / (2 * K)))
    for sgn in (1, -1):
        ax.axhline(sgn * zcrit, color="C3", ls="--", lw=0.8)
        ax.axhline(sgn * 2, color="0.6", ls=":", lw=0.8)
    ax.axhline(0, color="k", lw=0.5)
    flagged = [k for k, st in enumerate(cmp.statistics) if st.differs]
    for k in sorted(flagged, key=lambda k: -abs(z[k]))[:8]:  # the largest only: stays legible
        name = cmp.statistics[k].name
        ax.annotate(name, (k, zc[k]), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set(
        xlabel="statistic (means, correlations" + (", beta_eff)" if cmp.a.beta_eff else ")"),
        ylabel="z",
        title=f"z-scores; dashed: Holm's first threshold (alpha = {cmp.alpha_moments:g})",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_acf(cmp, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    sides = [cmp.a] + ([cmp.b] if cmp.b is not None else [])
    names = list(dict.fromkeys(k for s in sides for k in s.series))
    for c, name in enumerate(names):
        for s, ls in zip(sides, ("-", "--")):
            it = s.series.get(name)
            if it is None:
                continue
            ax.plot(
                np.arange(len(it.acf)),
                it.acf,
                ls=ls,
                color=f"C{c}",
                label=f"{s.label}: {name} (tau {it.tau:.3g})",
            )
            ax.axvline(it.window, color=f"C{c}", ls=":", lw=0.7)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(
        xlabel="lag (draws)",
        ylabel="autocorrelation rho(t)",
        title="autocorrelation (A solid, B dashed; dotted: Sokal window)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_states(cmp, path: Path) -> Path | None:
    hist = cmp.plot_data.get("hist")
    if not hist:
        return None
    ref = cmp.plot_data.get("p_ref")
    x = ref if ref is not None else hist[1]
    y = hist[0]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.8))
    seen = (x > 0) & (y > 0)
    if not seen.any():
        plt.close(fig)
        return None
    ax.loglog(x[seen], y[seen], ".", ms=3, alpha=0.6, label="states seen by both")
    lo = min(x[seen].min(), y[seen].min())
    ax.plot([lo, 1], [lo, 1], "k-", lw=0.8, label="equal")
    n_a = cmp.a.n_draws / max(1.0, cmp.a.tau_max)
    band = np.geomspace(lo, 1, 100)
    ax.fill_between(
        band,
        np.clip(band - 2 * np.sqrt(band / n_a), lo / 10, None),
        band + 2 * np.sqrt(band / n_a),
        color="0.8",
        alpha=0.5,
        label="±2 SE of A (N_eff)",
    )
    ax.set(
        xlabel="exact probability" if ref is not None else "B frequency",
        ylabel="A frequency",
        title="state probabilities",
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _table(rows, head) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        cls = ""
        if isinstance(r, tuple) and len(r) and r[0] == "__differs__":
            cls, r = ' class="differs"', r[1:]
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _stat_rows(stats) -> list:
    rows = []
    for s in stats:
        r = (
            s.name,
            f"{s.a:.4f}",
            f"{s.a_err:.4f}",
            f"{s.b:.4f}",
            f"{s.b_err:.4f}",
            f"{s.z:+.2f}",
            f"{s.p_holm:.3g}",
            "yes" if s.differs else "",
        )
        rows.append(("__differs__", *r) if s.differs else r)
    return rows


def _section(cmp, k: int, stem: str, folder: Path) -> str:
    tag = f"{stem}-{k}" if k else stem
    imgs = [
        _plot_moments(cmp, folder / f"{tag}-moments.png"),
        _plot_acf(cmp, folder / f"{tag}-acf.png"),
        _plot_states(cmp, folder / f"{tag}-states.png"),
    ]
    other = "B" if cmp.b is not None else "exact"
    ok = cmp.consistent
    parts = [
        f"<h2>A vs {html.escape(other if cmp.b is not None else cmp.reference)}</h2>",
        f'<p class="verdict {"ok" if ok else "bad"}">{html.escape(cmp.verdict())}</p>',
        "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in _inputs(cmp)) + "</ul>",
        "<h3>Side by side</h3>",
        _table(_side_rows(cmp), ["", "A"] + (["B"] if cmp.b is not None else ["exact"])),
        f"<p>{html.escape(_joint_line(cmp))}</p>",
    ]
    parts += [f'<p><img src="{p.name}" alt="{p.stem}"></p>' for p in imgs if p is not None]
    head = ["statistic", "A", "± SE", other, "± SE", "z", "p (Holm)", "differs"]
    top = _top(cmp, 20)
    parts.append(
        f"<h3>Statistics with the largest |z| (Holm at alpha = {cmp.alpha_moments:g})</h3>"
    )
    parts.append(_table(_stat_rows(top), head))
    if len(cmp.statistics) > len(top):
        parts.append(
            f"<details><summary>all {len(cmp.statistics)} statistics</summary>"
            + _table(_stat_rows(cmp.statistics), head)
            + "</details>"
        )
    if cmp.notes:
        parts.append(
            '<ul class="notes">'
            + "".join(f"<li>{html.escape(x)}</li>" for x in cmp.notes)
            + "</ul>"
        )
    return "\n".join(parts)


def html_report(comparisons: list, path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".html":
        path = path.with_suffix(".html")
    path.parent.mkdir(parents=True, exist_ok=True)
    many = len(comparisons) > 1
    body = [
        _section(c, k + 1 if many else 0, path.stem, path.parent) for k, c in enumerate(comparisons)
    ]
    verdicts = [c.verdict() for c in comparisons]
    title = "pbitsim compare"
    page = (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body>\n<h1>{title}</h1>\n"
        + "".join(f"<p><b>{html.escape(v)}</b></p>" for v in verdicts if many)
        + "\n".join(body)
        + "\n<p class='notes'>Standard errors are sqrt((1 - m²) tau_int / N) per moment; "
        "the verdict splits alpha between the moment family (Holm) and the joint test. "
        "See docs/diagnostics.md, “Comparing two sample sets”.</p>\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path
