"""Put two benchmark reports side by side: ``python -m benchmarks.compare A.json B.json``.

Both reports must be of the same kind (``benchmark`` field: ``hotloop``, ``epoch``,
``vectorizer``, ``accuracy`` or ``step``); otherwise it refuses with exit status 2.  Cases
are matched on

* hotloop: shape name *and* ``B, T, V, D``, impl, phase, device and dtype;
* epoch: backend and device;
* vectorizer: row (``int``, ``multi_hot``, ``tf_idf_bigrams``, ...), implementation
  (``ours``/``tf``) and phase (``adapt``, ``transform``, ``total``).  Reports written
  before the rows existed (phases at the top level, the tutorial's layer only) are
  read as the ``int`` row;
* accuracy: case name (``tutorial``, ``bigrams``, ``fasttext``, ``fasttext-bigrams``, ...);
  the timing is the training's wall time (``cases.<name>.wall``);
* step: preset, its ``B, T, V, D`` and phase: ``forward``, ``backward``, ``adam``, ``step``
  (``presets.<name>.phases``), the parts of the Adam step timed in training steps,
  ``adam.table`` and ``adam.dense`` (``presets.<name>.adam_parts``), and the same updates
  timed back to back on copies, ``isolated.table``, ``isolated.dense`` and
  ``isolated.floor`` (``presets.<name>.isolated``).

A case whose shape or device differs is never matched: it is listed under "only in A"
or "only in B".  Cases skipped in either report are listed apart.  For each matched
case the table shows both medians and the ratio B/A (> 1: B is slower); for accuracy
reports the medians are in seconds, not milliseconds, and the table adds both median test
accuracies and their difference B - A (> 0: B is more accurate).

Noise rule: a case is marked ``*`` when ``|B/A - 1|`` exceeds the relative IQR
(``iqr / median``) of A *and* of B, that is the larger of the two, so the change is
beyond the spread of both runs.  Where neither run has an IQR (a derived backward,
a single timing) the mark is ``?``.  Exit status: 0 when at least one case matched,
1 when none did, 2 when the reports cannot be compared.

A file that is missing, not JSON, not a JSON object, or with a field missing or of the
wrong type (``cases[3].median_s``, ``backends.torch.epoch``,
``cases.tutorial.test_accuracy[0]``, ``presets.bigrams.phases.adam``, ...) is refused as one line,
``error: ...`` (:func:`embeddings.errors.cli`), naming the file, the field and the fix.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.common import quartiles
from embeddings.errors import ArgumentParser, InvalidInput, MissingFile, cli

KINDS = ("hotloop", "epoch", "vectorizer", "accuracy", "step")
VECTORIZER_PHASES = ("adapt", "transform", "total")
LEGACY_VECTORIZER_MODE = "int"  # the one row of vectorizer reports without ``modes``
WRITERS = ("python -m benchmarks.hotloop, benchmarks.epoch, benchmarks.vectorizer, "
           "benchmarks.accuracy or benchmarks.step")
NUMBER = (int, float)
HOTLOOP_KEYS = {"shape": (str,), "B": (int,), "T": (int,), "V": (int,), "D": (int,),
                "impl": (str,), "phase": (str,), "device": (str,)}
STEP_DIMS = ("B", "T", "V", "D")
# group -> prefix of its phase names
STEP_SECTIONS = {"phases": "", "adam_parts": "adam.", "isolated": "isolated."}
TYPE_NAMES = {(str,): "a string", (int,): "an integer", NUMBER: "a number", (list,): "a list",
              (dict,): "an object"}


class CompareError(InvalidInput):
    """Two reports that cannot be compared, or a file that is not a report."""


@dataclass(frozen=True)
class Row:
    """One case of one report; ``accuracy`` is the median test accuracy (accuracy reports)."""

    median_s: float | None
    iqr_s: float | None
    skipped: str | None = None
    accuracy: float | None = None

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


def load(path: str | Path, name: str = "report") -> dict[str, Any]:
    """Read a report and check its fields (:func:`check`).

    Args:
        path (str | Path): the JSON file.
        name (str): how messages call it (``A``, ``B``). Default: ``"report"``.

    Returns:
        dict[str, Any]: the report.

    Raises:
        MissingFile: there is no such file.
        CompareError: the file cannot be read, is not JSON, not a JSON object, or has a
            field missing or of the wrong type.
    """
    label = f"report {name} ({path})"
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise MissingFile(f"{label} does not exist; pass a JSON report written by "
                          f"{WRITERS}") from err
    except OSError as err:
        raise CompareError(f"{label} cannot be read ({err.strerror}); pass a JSON report "
                           f"written by {WRITERS}") from err
    except ValueError as err:  # also undecodable bytes
        raise CompareError(f"{label} is not JSON ({err}); pass a JSON report written by "
                           f"{WRITERS}") from err
    if not isinstance(report, dict):
        raise CompareError(f"{label} is not a benchmark report: it must be a JSON object "
                           f"with a benchmark field. Received: a JSON "
                           f"{type(report).__name__}; pass a report written by {WRITERS}")
    check(report, label)
    return report


def kind_of(report: dict[str, Any], name: str = "report") -> str:
    """The report's ``benchmark`` field.

    Raises:
        CompareError: it is missing or not one of ``KINDS``.
    """
    kind = report.get("benchmark")
    if kind not in KINDS:
        raise CompareError(f"{name} has no known benchmark kind (one of {', '.join(KINDS)}). "
                           f"Received: benchmark={kind!r}; pass a report written by {WRITERS}")
    return str(kind)


def _typed(value: Any, path: str, types: tuple[type, ...], *, required: bool = False,
           present: bool = True) -> Any:
    """``value`` (the field at ``path``) checked to be one of ``types``, or null when not
    ``required``.

    Raises:
        CompareError: the message names the field by its path (``cases[3].median_s``).
    """
    if value is None and not required:
        return None
    if value is None or isinstance(value, bool) or not isinstance(value, types):
        what = TYPE_NAMES[types] + ("" if required else " or null")
        if not present:
            raise CompareError(f"field {path} is missing; it must be {what}")
        raise CompareError(f"field {path} must be {what}. Received: {path}={value!r:.60}")
    return value


def _field(obj: dict[str, Any], key: str, where: str, types: tuple[type, ...], *,
           required: bool = False) -> Any:
    """``obj[key]`` checked by :func:`_typed`; ``where`` is the path of ``obj``."""
    path = f"{where}.{key}" if where else key
    return _typed(obj.get(key), path, types, required=required, present=key in obj)


def _timing(entry: dict[str, Any], where: str) -> None:
    _field(entry, "skipped", where, (str,))
    _field(entry, "median_s", where, NUMBER)
    _field(entry, "iqr_s", where, NUMBER)
    for i, t in enumerate(_field(entry, "times_s", where, (list,)) or []):
        _typed(t, f"{where}.times_s[{i}]", NUMBER, required=True)


def _check_fields(report: dict[str, Any], kind: str) -> None:
    env = _field(report, "environment", "", (dict,))
    if env is not None:
        _field(env, "git_commit", "environment", (str,))
    if kind == "hotloop":
        for i, case in enumerate(_field(report, "cases", "", (list,), required=True)):
            where = f"cases[{i}]"
            _typed(case, where, (dict,), required=True)
            for key, types in HOTLOOP_KEYS.items():
                _field(case, key, where, types, required=True)
            _field(case, "dtype", where, (str,))
            _timing(case, where)
    elif kind == "epoch":
        config = _field(report, "config", "", (dict,))
        if config is not None:
            _field(config, "device", "config", (str,))
        for backend, result in _field(report, "backends", "", (dict,), required=True).items():
            where = f"backends.{backend}"
            _typed(result, where, (dict,), required=True)
            _field(result, "skipped", where, (str,))
            epoch = _field(result, "epoch", where, (dict,))
            if epoch is not None:
                _timing(epoch, f"{where}.epoch")
    elif kind == "accuracy":
        for name, case in _field(report, "cases", "", (dict,), required=True).items():
            where = f"cases.{name}"
            _typed(case, where, (dict,), required=True)
            _field(case, "kind", where, (str,))
            _field(case, "skipped", where, (str,))
            if _field(case, "wall", where, (dict,)) is not None:
                _timing(case["wall"], f"{where}.wall")
            for i, value in enumerate(_field(case, "test_accuracy", where, (list,)) or []):
                _typed(value, f"{where}.test_accuracy[{i}]", NUMBER, required=True)
    elif kind == "step":
        for name, result in _field(report, "presets", "", (dict,), required=True).items():
            where = f"presets.{name}"
            _typed(result, where, (dict,), required=True)
            _field(result, "skipped", where, (str,))
            shape = _field(result, "shape", where, (dict,), required="skipped" not in result)
            for dim in STEP_DIMS if shape is not None else ():
                _field(shape, dim, f"{where}.shape", (int,), required=True)
            for group in STEP_SECTIONS:
                for phase, entry in (_field(result, group, where, (dict,)) or {}).items():
                    _typed(entry, f"{where}.{group}.{phase}", (dict,), required=True)
                    _timing(entry, f"{where}.{group}.{phase}")
    else:
        modes = _field(report, "modes", "", (dict,))
        sections = {"": report} if modes is None else \
            {f"modes.{mode}": _typed(row, f"modes.{mode}", (dict,), required=True)
             for mode, row in modes.items()}
        for where, row in sections.items():
            for impl in ("ours", "tf"):
                path = f"{where}.{impl}" if where else impl
                section = _field(row, impl, where, (dict,))
                if section is not None:
                    _field(section, "skipped", path, (str,))
                    for phase in VECTORIZER_PHASES:
                        if _field(section, phase, path, (dict,)) is not None:
                            _timing(section[phase], f"{path}.{phase}")


def check(report: dict[str, Any], name: str = "report") -> str:
    """Check that ``report`` has every field :func:`compare` reads, of the right type.

    Args:
        report (dict[str, Any]): a parsed report.
        name (str): how messages call it. Default: ``"report"``.

    Returns:
        str: the report's kind, one of ``KINDS``.

    Raises:
        CompareError: an unknown kind, or a field missing or of the wrong type; the
            message names ``name``, the field and the fix.
    """
    kind = kind_of(report, name)
    try:
        _check_fields(report, kind)
    except CompareError as err:
        raise CompareError(f"{name}: {err}; fix the field, or write the report again with "
                           f"python -m benchmarks.{kind}") from None
    return kind


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
    elif kind == "accuracy":
        for name, case in report.get("cases", {}).items():
            row = _row(case.get("wall") or {"skipped": case.get("skipped") or "no timings"})
            accuracies = case.get("test_accuracy")
            out[(name,)] = replace(row, accuracy=statistics.median(accuracies)
                                   if accuracies else None)
    elif kind == "step":
        for name, result in report.get("presets", {}).items():
            shape = result.get("shape") or {}
            dims = " ".join(f"{d}={shape[d]}" for d in STEP_DIMS if d in shape)
            if result.get("skipped"):
                out[(name, dims, "step")] = _row({"skipped": result["skipped"]})
            for group, prefix in STEP_SECTIONS.items():
                for phase, entry in (result.get(group) or {}).items():
                    out[(name, dims, prefix + phase)] = _row(entry)
    else:
        modes = report.get("modes")
        if modes is None:  # a report from before the rows: the tutorial's int layer
            modes = {LEGACY_VECTORIZER_MODE: report}
        for mode, row in modes.items():
            for impl in ("ours", "tf"):
                section = row.get(impl) or {}
                for phase in VECTORIZER_PHASES:
                    entry = section.get(phase) or {"skipped": section.get("skipped") or
                                                   "absent"}
                    out[(mode, impl, phase)] = _row(entry)
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    """Match the cases of two reports of one kind.

    Args:
        a (dict[str, Any]): the baseline report.
        b (dict[str, Any]): the report compared with it.

    Returns:
        Comparison: matched cases, cases skipped in either, and cases in one report only.

    Raises:
        CompareError: the reports are of different or unknown kinds, or malformed.
    """
    kind_a, kind_b = check(a, "A"), check(b, "B")
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


def _accuracies(m: Match) -> str:
    """`` A acc  B acc  B-A`` of an accuracy report's case (``n/a`` where unknown)."""
    a, b = m.a.accuracy, m.b.accuracy
    shown = [("n/a" if x is None else f"{x:.4f}") for x in (a, b)]
    diff = "n/a" if a is None or b is None else f"{b - a:+.4f}"
    return f"  {shown[0]:>7}  {shown[1]:>7}  {diff:>7}"


def format_comparison(result: Comparison) -> list[str]:
    """The table and the lists of unmatched and skipped cases, as lines."""
    lines = []
    accuracy = result.kind == "accuracy"
    unit, scale = ("s", 1.0) if accuracy else ("ms", 1e3)
    if result.matched:
        width = max(len(" ".join(m.key)) for m in result.matched)
        lines.append(f"{'case':<{width}}  {'A ' + unit:>11}  {'B ' + unit:>11}  {'B/A':>6}  "
                     f"{'noise':>6}  mark"
                     + (f"  {'A acc':>7}  {'B acc':>7}  {'B-A acc':>7}" if accuracy else ""))
        for m in result.matched:
            noise = "n/a" if m.noise is None else f"{m.noise:.1%}"
            line = (f"{' '.join(m.key):<{width}}  {m.a_median_s * scale:11.4f}  "
                    f"{m.b_median_s * scale:11.4f}  {m.ratio:6.3f}  {noise:>6}  {m.mark:<4}")
            lines.append((line + (_accuracies(m) if accuracy else "")).rstrip())
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
        cannot be compared (``error: ...`` on stderr).
    """
    parser = ArgumentParser(prog="python -m benchmarks.compare",
                            description=__doc__.splitlines()[0])
    parser.add_argument("a", help="baseline report (JSON)")
    parser.add_argument("b", help="report to compare with it (JSON)")
    args = parser.parse_args(argv)

    def body() -> int:
        a, b = load(args.a, "A"), load(args.b, "B")
        result = compare(a, b)
        print(f"{result.kind} reports")
        print(_describe("A", args.a, a))
        print(_describe("B", args.b, b))
        for line in format_comparison(result):
            print(line)
        if not result.matched:
            print("no case was measured in both reports", file=sys.stderr)
            return 1
        return 0

    return cli(body)


if __name__ == "__main__":
    sys.exit(main())
