"""Put two benchmark reports side by side: ``python -m benchmarks.compare A.json B.json``.

Both reports must be of the same kind (``benchmark`` field: ``hotloop``, ``epoch`` or
``vectorizer``); otherwise it refuses with exit status 2.  Cases are matched on

* hotloop: shape name *and* ``B, T, V, D``, impl, phase, device and dtype;
* epoch: backend and device;
* vectorizer: implementation (``ours``/``tf``) and phase (``adapt``, ``transform``, ``total``).

A case whose shape or device differs is never matched: it is listed under "only in A"
or "only in B".  Cases skipped in either report are listed apart.  For each matched
case the table shows both medians and the ratio B/A (> 1: B is slower).

Noise rule: a case is marked ``*`` when ``|B/A - 1|`` exceeds the relative IQR
(``iqr / median``) of A *and* of B, that is the larger of the two, so the change is
beyond the spread of both runs.  Where neither run has an IQR (a derived backward,
a single timing) the mark is ``?``.  Exit status: 0 when at least one case matched,
1 when none did, 2 when the reports cannot be compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import quartiles

KINDS = ("hotloop", "epoch", "vectorizer")
VECTORIZER_PHASES = ("adapt", "transform", "total")


class CompareError(ValueError):
    """Two reports that cannot be compared, or a file that is not a report."""


@dataclass(frozen=True)
class Row:
    """One case of one report."""

    median_s: float | None
    iqr_s: float | None
    skipped: str | None = None

    @property
    def relative_iqr(self) -> float | None:
        """``iqr / median``, or ``None`` when either is missing."""
        if self.iqr_s is None or not self.median_s:
            return None
        return self.iqr_s / self.median_s


@dataclass(frozen=True)
class Match:
    """A case present and measured in both reports."""

    key: tuple[str, ...]
    a_median_s: float
    b_median_s: float
    a: Row
    b: Row

    @property
    def ratio(self) -> float:
        """Median of B over median of A."""
        return self.b_median_s / self.a_median_s

    @property
    def noise(self) -> float | None:
        """The larger relative IQR of the two runs, ``None`` when neither has one."""
        known = [r for r in (self.a.relative_iqr, self.b.relative_iqr) if r is not None]
        return max(known) if known else None

    @property
    def mark(self) -> str:
        """``*`` beyond the noise of both runs, ``?`` when the noise is unknown, else ``""``."""
        if self.noise is None:
            return "?"
        return "*" if abs(self.ratio - 1.0) > self.noise else ""


@dataclass
class Comparison:
    """The outcome of :func:`compare`."""

    kind: str
    matched: list[Match] = field(default_factory=list)
    skipped: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    only_a: list[tuple[str, ...]] = field(default_factory=list)
    only_b: list[tuple[str, ...]] = field(default_factory=list)


def load(path: str | Path) -> dict[str, Any]:
    """Read a report.

    Raises:
        CompareError: the file is missing, not JSON, or not a JSON object.
    """
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise CompareError(f"cannot read a report from {path}: {err}") from err
    if not isinstance(report, dict):
        raise CompareError(f"{path} is not a benchmark report (a JSON object). "
                           f"Received: a JSON {type(report).__name__}")
    return report


def kind_of(report: dict[str, Any], name: str = "report") -> str:
    """The report's ``benchmark`` field.

    Raises:
        CompareError: it is missing or not one of ``KINDS``.
    """
    kind = report.get("benchmark")
    if kind not in KINDS:
        raise CompareError(f"{name} has no known benchmark kind (one of {', '.join(KINDS)}). "
                           f"Received: benchmark={kind!r}")
    return str(kind)


def _row(entry: dict[str, Any]) -> Row:
    if entry.get("skipped") or not entry.get("median_s"):
        return Row(None, None, str(entry.get("skipped") or "no median"))
    iqr = entry.get("iqr_s")
    times = entry.get("times_s")
    if times is not None and len(times) < 2:
        iqr = None  # one timing has no spread to speak of
    elif iqr is None and times:  # older reports: min/max/times only
        q1, q3 = quartiles(times)
        iqr = q3 - q1
    return Row(float(entry["median_s"]), None if iqr is None else float(iqr))


def rows(report: dict[str, Any]) -> dict[tuple[str, ...], Row]:
    """The report's cases keyed by what must agree for two cases to match.

    Args:
        report (dict[str, Any]): a report of a kind in ``KINDS``.

    Returns:
        dict[tuple[str, ...], Row]: one row per case.
    """
    kind = kind_of(report)
    out: dict[tuple[str, ...], Row] = {}
    if kind == "hotloop":
        for case in report.get("cases", []):
            dims = f"B={case['B']} T={case['T']} V={case['V']} D={case['D']}"
            key = (case["shape"], dims, case["impl"], case["phase"], case["device"],
                   case.get("dtype", "float32"))
            out[key] = _row(case)
    elif kind == "epoch":
        device = str(report.get("config", {}).get("device", "cpu"))
        for backend, result in report.get("backends", {}).items():
            epoch = result.get("epoch") or {"skipped": result.get("skipped") or "no timings"}
            out[(backend, device)] = _row(epoch)
    else:
        for impl in ("ours", "tf"):
            section = report.get(impl) or {}
            for phase in VECTORIZER_PHASES:
                entry = section.get(phase) or {"skipped": section.get("skipped") or "absent"}
                out[(impl, phase)] = _row(entry)
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    """Match the cases of two reports of one kind.

    Args:
        a (dict[str, Any]): the baseline report.
        b (dict[str, Any]): the report compared with it.

    Returns:
        Comparison: matched cases, cases skipped in either, and cases in one report only.

    Raises:
        CompareError: the reports are of different or unknown kinds.
    """
    kind_a, kind_b = kind_of(a, "A"), kind_of(b, "B")
    if kind_a != kind_b:
        raise CompareError(f"cannot compare reports of different kinds. Received: A "
                           f"benchmark={kind_a!r}, B benchmark={kind_b!r}; compare two "
                           "reports of the same benchmark.")
    rows_a, rows_b = rows(a), rows(b)
    result = Comparison(kind_a)
    for key, row_a in rows_a.items():
        row_b = rows_b.get(key)
        if row_b is None:
            result.only_a.append(key)
        elif row_a.median_s is None or row_b.median_s is None:
            why = "; ".join(f"{n}: {r.skipped}" for n, r in (("A", row_a), ("B", row_b))
                            if r.skipped)
            result.skipped.append((key, why))
        else:
            result.matched.append(Match(key, row_a.median_s, row_b.median_s, row_a, row_b))
    result.only_b = [key for key in rows_b if key not in rows_a]
    return result


def _describe(name: str, path: str, report: dict[str, Any]) -> str:
    env = report.get("environment", {})
    commit = (env.get("git_commit") or "?")[:10] + ("+dirty" if env.get("git_dirty") else "")
    return (f"{name}: {path} ({env.get('hostname', '?')}, {env.get('date_utc', '?')}, "
            f"{commit}, {env.get('cpu_model', '?')}, torch {env.get('torch', '?')})")


def format_comparison(result: Comparison) -> list[str]:
    """The table and the lists of unmatched and skipped cases, as lines."""
    lines = []
    if result.matched:
        width = max(len(" ".join(m.key)) for m in result.matched)
        lines.append(f"{'case':<{width}}  {'A ms':>11}  {'B ms':>11}  {'B/A':>6}  "
                     f"{'noise':>6}  mark")
        for m in result.matched:
            noise = "n/a" if m.noise is None else f"{m.noise:.1%}"
            lines.append(f"{' '.join(m.key):<{width}}  {m.a_median_s * 1e3:11.4f}  "
                         f"{m.b_median_s * 1e3:11.4f}  {m.ratio:6.3f}  {noise:>6}  {m.mark}")
        lines.append("mark: * |B/A - 1| exceeds the relative IQR of both runs; ? no IQR known")
    for title, keys in (("only in A", result.only_a), ("only in B", result.only_b)):
        if keys:
            lines.append(f"{title} ({len(keys)}):")
            lines += [f"  {' '.join(key)}" for key in keys]
    if result.skipped:
        lines.append(f"skipped in A or B ({len(result.skipped)}):")
        lines += [f"  {' '.join(key)}: {why}" for key, why in result.skipped]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Compare two reports and print the table.

    Args:
        argv (Sequence[str] | None): command-line arguments. Default: ``sys.argv[1:]``.

    Returns:
        int: 0 when at least one case matched, 1 when none did, 2 when the reports
        cannot be compared (the message goes to stderr).
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("a", help="baseline report (JSON)")
    parser.add_argument("b", help="report to compare with it (JSON)")
    args = parser.parse_args(argv)
    try:
        a, b = load(args.a), load(args.b)
        result = compare(a, b)
    except CompareError as err:
        print(f"benchmarks.compare: {err}", file=sys.stderr)
        return 2
    print(f"{result.kind} reports")
    print(_describe("A", args.a, a))
    print(_describe("B", args.b, b))
    for line in format_comparison(result):
        print(line)
    if not result.matched:
        print("no case was measured in both reports", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
