"""Keras's own ``TextVectorization`` unit tests, run against :mod:`embeddings.layers`.

:func:`rewrite` reads the installed ``keras/src/layers/preprocessing/
text_vectorization_test.py`` (never copied into this repository) and rewrites it with
:mod:`ast`: the ``tensorflow``, ``tf_data`` and ``grain`` imports are dropped,
``layers.TextVectorization`` is :class:`embeddings.layers.TextVectorization`, and each
test that cannot apply without TensorFlow is marked skipped with the reason: one whose
body uses ``tf``, ``tf_data`` or ``grain``, or one Keras itself skips on non-TensorFlow
backends (``@pytest.mark.skipif(backend.backend() != "tensorflow", ...)``).

:func:`run` runs the rewritten file with pytest in a subprocess on one Keras backend,
with this module as a plugin (``-p keras_conformance``): it makes ``import tensorflow``
fail and records every attempt, and writes each test's outcome to a JSON report.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KERAS_TEST = Path("src", "layers", "preprocessing", "text_vectorization_test.py")
TF_MODULES = ("tensorflow", "grain")  # imports dropped (with their submodules)
TF_NAMES = {"tf": "uses TensorFlow ops (`tf`)", "tf_data": "uses tf.data (`tf_data`)",
            "grain": "uses a grain dataset (`grain`, not installed)"}
KERAS_SKIP = "Keras runs it on the TensorFlow backend only: "
REPORT_ENV = "KERAS_CONFORMANCE_REPORT"
OUR_LAYER = "embeddings.layers.TextVectorization"

# Put after the imports of the rewritten file: Keras's layers, ours for TextVectorization.
_USE_OUR_LAYER = f"""
import types as _types
from embeddings.layers import TextVectorization as _OurTextVectorization
layers = _types.SimpleNamespace(**{{**vars(layers), "TextVectorization": _OurTextVectorization}})
assert f"{{layers.TextVectorization.__module__}}.{{layers.TextVectorization.__name__}}" == \\
    {OUR_LAYER!r}
"""


def keras_test_file() -> Path:
    """The installed Keras's ``text_vectorization_test.py``.

    Raises:
        FileNotFoundError: Keras, or that file, is not installed.
    """
    spec = importlib.util.find_spec("keras")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("Keras is not installed: pip install 'embeddings[test]'")
    path = Path(list(spec.submodule_search_locations)[0]) / KERAS_TEST
    if not path.is_file():
        raise FileNotFoundError(f"this Keras has no {KERAS_TEST}. Received: {path}")
    return path


def _dropped(node: ast.stmt) -> bool:
    """Whether ``node`` imports TensorFlow or grain."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        names = [node.module or ""]
    else:
        return False
    return any(n.split(".")[0] in TF_MODULES for n in names)


def _keras_skip_reason(decorator: ast.expr) -> str | None:
    """The reason of ``@pytest.mark.skipif(backend.backend() != "tensorflow", reason=...)``."""
    if not (isinstance(decorator, ast.Call) and ast.unparse(decorator.func) ==
            "pytest.mark.skipif" and decorator.args):
        return None
    if ast.unparse(decorator.args[0]) not in ("backend.backend() != 'tensorflow'",
                                              "backend.backend() != \"tensorflow\""):
        return None
    reason = next((k.value for k in decorator.keywords if k.arg == "reason"), None)
    return KERAS_SKIP + (ast.literal_eval(reason) if reason is not None else "(no reason)")


def not_applicable(test: ast.FunctionDef) -> str | None:
    """Why ``test`` cannot run without TensorFlow, or ``None`` when it can."""
    reasons = [r for r in map(_keras_skip_reason, test.decorator_list) if r]
    used = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
    reasons += [why for name, why in TF_NAMES.items() if name in used]
    return "; ".join(reasons) or None


def rewrite(source: str) -> tuple[str, dict[str, str]]:
    """Keras's test module rewritten to test our layer without TensorFlow.

    Args:
        source (str): the text of ``text_vectorization_test.py``.

    Returns:
        tuple[str, dict[str, str]]: the new source, and the not-applicable test methods
        with their reasons.

    Raises:
        ValueError: the module no longer imports ``layers`` from ``keras.src``.
    """
    tree = ast.parse(source)
    body = [node for node in tree.body if not _dropped(node)]
    at = next((i for i, node in enumerate(body) if isinstance(node, ast.ImportFrom) and
               node.module == "keras.src" and any(a.name == "layers" for a in node.names)),
              None)
    if at is None:
        raise ValueError("Keras's test module no longer has `from keras.src import layers`; "
                         "update tests/keras_conformance.py. Received: its imports")
    body[at + 1:at + 1] = ast.parse(_USE_OUR_LAYER).body
    skipped: dict[str, str] = {}
    for cls in (node for node in body if isinstance(node, ast.ClassDef)):
        for test in cls.body:
            if not (isinstance(test, ast.FunctionDef) and test.name.startswith("test")):
                continue
            reason = not_applicable(test)
            if reason is None:
                continue
            skipped[test.name] = reason
            # innermost, so that absl's parameterized copies keep the mark
            test.decorator_list = [d for d in test.decorator_list
                                   if _keras_skip_reason(d) is None]
            test.decorator_list.append(ast.parse(f"pytest.mark.skip(reason={reason!r})",
                                                 mode="eval").body)
    tree.body = body
    return ast.unparse(ast.fix_missing_locations(tree)), skipped


@dataclass
class Report:
    """The outcome of one run: test name -> reason for each skipped test, the names
    of the passed and failed ones, and every attempt to import TensorFlow."""

    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    tensorflow_imports: list[dict[str, Any]] = field(default_factory=list)
    tensorflow_loaded: bool = False
    returncode: int = 0
    output: str = ""

    def tensorflow_imports_by(self, folder: Path) -> list[str]:
        """The stacks of the attempts to import TensorFlow made by a module in ``folder``
        (the frame that ran the ``import`` or ``importlib.import_module``)."""
        return [a["stack"] for a in self.tensorflow_imports
                if Path(a["importer"]).resolve().is_relative_to(folder.resolve())]


def run(backend: str, workdir: Path, *, timeout: float = 600) -> Report:
    """Rewrite Keras's tests into ``workdir`` and run them with ``KERAS_BACKEND=backend``.

    Args:
        backend (str): ``"torch"``, ``"jax"`` or ``"numpy"``.
        workdir (Path): an empty folder for the rewritten module and the report.
        timeout (float): seconds before the run is stopped. Default: ``600``.

    Returns:
        Report: what ran, what was skipped and why, and the TensorFlow import attempts.
    """
    source, _ = rewrite(keras_test_file().read_text(encoding="utf-8"))
    test_file = workdir / "text_vectorization_test.py"
    test_file.write_text(source, encoding="utf-8")
    (workdir / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings =\n    error\n"
        "    ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning\n",
        encoding="utf-8")
    report_path = workdir / "report.json"
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "KERAS_BACKEND": backend, REPORT_ENV: str(report_path),
           "PYTHONPATH": os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "keras_conformance", "-p", "no:cacheprovider",
         "-q", "-rA", "--rootdir", str(workdir), "-c", str(workdir / "pytest.ini"),
         str(test_file)],
        capture_output=True, text=True, env=env, cwd=workdir, timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    if not report_path.is_file():
        raise AssertionError(f"pytest wrote no report (exit {proc.returncode}):\n{output[-5000:]}")
    raw = json.loads(report_path.read_text(encoding="utf-8"))
    return Report(passed=raw["passed"], failed=raw["failed"], skipped=raw["skipped"],
                  tensorflow_imports=raw["tensorflow_imports"],
                  tensorflow_loaded=raw["tensorflow_loaded"], returncode=proc.returncode,
                  output=output)


# The plugin, loaded in the subprocess by ``-p keras_conformance`` --------------------------

_attempts: list[dict[str, Any]] = []
_outcomes: dict[str, Any] = {"passed": [], "failed": {}, "skipped": {}}


def _in_importlib(filename: str) -> bool:
    return filename.startswith("<frozen importlib") or \
        Path(filename).resolve() == Path(importlib.__file__).resolve()


class _NoTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import tensorflow`` fail and records who tried.

    It finds ``tensorflow`` and its submodules itself and fails when loading them, so a
    probe that only looks for the module (``importlib.util.find_spec``, as torch's dynamo
    does) is no attempt, while an import is refused even where TensorFlow is installed.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] != "tensorflow":
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        stack = [f for f in traceback.extract_stack()[:-1] if not _in_importlib(f.filename)]
        _attempts.append({"module": spec.name, "importer": stack[-1].filename,
                          "stack": "".join(traceback.format_list(stack))})
        raise ModuleNotFoundError(f"No module named {spec.name!r} (the conformance run "
                                  "forbids TensorFlow)", name=spec.name)

    def exec_module(self, module: Any) -> None:  # never reached: create_module raises
        raise ModuleNotFoundError(module.__name__)


def pytest_configure(config: Any) -> None:
    if os.environ.get(REPORT_ENV):
        sys.meta_path.insert(0, _NoTensorFlow())


def pytest_runtest_logreport(report: Any) -> None:
    if not os.environ.get(REPORT_ENV):
        return
    name = report.nodeid.rpartition("::")[2]
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _outcomes["skipped"][name] = reason.removeprefix("Skipped: ")
    elif report.failed:
        _outcomes["failed"][name] = str(report.longrepr)[-3000:]
    elif report.when == "call" and report.passed:
        _outcomes["passed"].append(name)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    Path(path).write_text(json.dumps({**_outcomes, "tensorflow_imports": _attempts,
                                      "tensorflow_loaded": "tensorflow" in sys.modules}),
                          encoding="utf-8")
