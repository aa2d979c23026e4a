"""The project's own sources never unpickle, run strings as code or unpack archives unsafely.

:func:`check_source` parses a module with :mod:`ast` (so ``torch.compile``, ``re.compile`` and
``model.eval()``, which are attribute calls, are told apart from the builtins) and reports
each use of something that can run code from data:

* ``pickle-module``: importing ``pickle``, ``_pickle``, ``cPickle``, ``dill``, ``marshal``
  or ``shelve`` (also by ``importlib.import_module``/``__import__`` with a literal name);
* ``builtin-eval``: calling the ``eval``, ``exec`` or ``compile`` builtins (not a name the
  module imports or defines itself);
* ``torch-load``: ``torch.load`` without ``weights_only=True``;
* ``numpy-load``: ``np.load``/``numpy.load`` without ``allow_pickle=False`` (not
  ``safetensors.numpy.load``, which parses safetensors and never pickles).  The keyword is
  required although NumPy's default has been ``False`` since 1.16.3: it states the intent
  where the file is read, stays safe on an older NumPy, and every call here already has it;
* ``keras-load-model``: ``keras.saving.load_model``/``keras.models.load_model`` without
  ``safe_mode=True`` (Keras's default today, but stated where a file is read);
* ``tar-extract``: in a module that imports ``tarfile``, ``.extract``/``.extractall``
  without ``filter="data"`` (or ``tarfile.data_filter``); ``shutil.unpack_archive`` too;
* ``yaml-load``: ``yaml.load``/``load_all`` without a ``SafeLoader``, and ``unsafe_load``,
  ``full_load`` and their ``_all`` forms;
* ``shell``: a ``subprocess`` call with ``shell`` other than a literal ``False``,
  ``subprocess.getoutput``/``getstatusoutput``, ``os.system`` and ``os.popen``.

A keyword passed only through ``**kwargs`` cannot be seen, so it counts as missing.  Each
rule has a negative twin: the checker run on a small source that breaks it must report it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("embeddings", "benchmarks", "parity_tests", "tests")

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "marshal", "shelve"}
CODE_BUILTINS = {"eval", "exec", "compile"}
KERAS_LOADERS = ("keras.saving.load_model", "keras.models.load_model")
YAML_UNSAFE = {"unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
SHELL_ALWAYS = {"subprocess.getoutput", "subprocess.getstatusoutput", "os.system", "os.popen"}


class Violation(NamedTuple):
    """One use of something the policy forbids."""

    line: int
    rule: str


def _names(tree: ast.AST) -> tuple[dict[str, str], set[str]]:
    """The module's import aliases (local name -> dotted origin) and the names it defines."""
    aliases: dict[str, str] = {}
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:  # `import a.b` binds `a`
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    return aliases, defined


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """``np.load`` -> ``numpy.load`` (through the module's imports); ``None`` for calls etc."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _is(name: str | None, *targets: str) -> bool:
    """Whether ``name`` is one of ``targets`` or ends with ``.target`` (``x.keras.saving...``)."""
    return name is not None and any(name == t or name.endswith("." + t) for t in targets)


def _argument(call: ast.Call, keyword: str, position: int | None = None) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _constant(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is type(value) \
        and node.value == value


def _call_rules(call: ast.Call, name: str | None, aliases: dict[str, str], defined: set[str],
                tar_module: bool) -> list[str]:
    """The rules one call breaks."""
    rules = []
    func = call.func
    if isinstance(func, ast.Name) and func.id in CODE_BUILTINS and func.id not in aliases \
            and func.id not in defined:
        rules.append("builtin-eval")
    if _is(name, *(f"builtins.{b}" for b in CODE_BUILTINS)):
        rules.append("builtin-eval")
    if _is(name, "importlib.import_module", "__import__"):
        module = _argument(call, "name", 0)
        if isinstance(module, ast.Constant) and str(module.value).split(".")[0] in PICKLE_MODULES:
            rules.append("pickle-module")
    if _is(name, "torch.load") and not _constant(_argument(call, "weights_only"), True):
        rules.append("torch-load")
    if (_is(name, "numpy.load") and not name.startswith("safetensors.")  # never pickles
            and not _constant(_argument(call, "allow_pickle", 2), False)):
        rules.append("numpy-load")
    if _is(name, *KERAS_LOADERS) and not _constant(_argument(call, "safe_mode", 3), True):
        rules.append("keras-load-model")
    is_extract = isinstance(func, ast.Attribute) and func.attr in ("extract", "extractall")
    if (is_extract and tar_module) or _is(name, "shutil.unpack_archive"):
        value = _argument(call, "filter")
        if not (_constant(value, "data") or _is(_dotted(value, aliases) if value else None,
                                                "tarfile.data_filter")):
            rules.append("tar-extract")
    if _is(name, "yaml.load", "yaml.load_all"):
        loader = _argument(call, "Loader", 1)
        loader_name = _dotted(loader, aliases) if loader is not None else None
        if loader_name is None or not loader_name.endswith("SafeLoader"):
            rules.append("yaml-load")
    if name is not None and name.startswith("yaml.") and name.split(".")[-1] in YAML_UNSAFE:
        rules.append("yaml-load")
    if _is(name, *SHELL_ALWAYS) or (
            name is not None and name.startswith("subprocess.")
            and (shell := _argument(call, "shell")) is not None and not _constant(shell, False)):
        rules.append("shell")
    return rules


def check_source(source: str, filename: str = "<source>") -> list[Violation]:
    """Every breach of the policy in one module's ``source``, in line order.

    Args:
        source (str): Python source.
        filename (str): for syntax errors. Default: ``"<source>"``.

    Returns:
        list[Violation]: ``(line, rule)`` pairs.
    """
    tree = ast.parse(source, filename)
    aliases, defined = _names(tree)
    tar_module = any(origin.split(".")[0] == "tarfile" for origin in aliases.values())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            modules = []
        if any(m.split(".")[0] in PICKLE_MODULES or m.split(".")[-1] in PICKLE_MODULES
               for m in modules):
            found.append(Violation(node.lineno, "pickle-module"))
        if isinstance(node, ast.Call):
            name = _dotted(node.func, aliases)
            found += [Violation(node.lineno, rule)
                      for rule in _call_rules(node, name, aliases, defined, tar_module)]
    return sorted(found)


def _project_sources() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (REPO / folder).rglob("*.py"))


def test_project_sources_follow_the_policy(capsys: pytest.CaptureFixture[str]) -> None:
    sources = _project_sources()
    # The scan must see the project (this file included), or it would pass on nothing.
    assert Path(__file__).resolve() in sources
    assert {p.relative_to(REPO).parts[0] for p in sources} == set(FOLDERS)
    offences = [f"{path.relative_to(REPO)}:{v.line}: {v.rule}"
                for path in sources
                for v in check_source(path.read_text(encoding="utf-8"), str(path))]
    with capsys.disabled():
        for line in offences:
            print(line)
    assert offences == [], "\n".join(offences)


# rule -> (a source that breaks it, a near twin that does not)
TWINS = {
    "pickle-module": ("import pickle\n", "import json\n"),
    "pickle-module:from": ("from dill import loads\n", "from json import loads\n"),
    "pickle-module:alias": ("import marshal as m\n", "import math as m\n"),
    "pickle-module:dynamic": ("import importlib\nimportlib.import_module('shelve')\n",
                              "import importlib\nimportlib.import_module('json')\n"),
    "builtin-eval": ("x = eval('1 + 1')\n", "import ast\nx = ast.literal_eval('1 + 1')\n"),
    "builtin-eval:exec": ("exec('x = 1')\n", "model.eval()\n"),
    "builtin-eval:compile": ("code = compile('x', 'f', 'exec')\n",
                             "import re, torch\nr = re.compile('x')\nf = torch.compile(g)\n"),
    "builtin-eval:builtins": ("import builtins\nbuiltins.exec('x')\n",
                              "def compile(x):\n    return x\ncompile(1)\n"),
    "torch-load": ("import torch\ntorch.load('m.pt')\n",
                   "import torch\ntorch.load('m.pt', weights_only=True)\n"),
    "torch-load:false": ("import torch\ntorch.load('m.pt', weights_only=False)\n",
                         "import torch\ntorch.load('m.pt', 'cpu', weights_only=True)\n"),
    "torch-load:from": ("from torch import load\nload('m.pt')\n",
                        "from torch import load\nload('m.pt', weights_only=True)\n"),
    "numpy-load": ("import numpy as np\nnp.load('a.npy', allow_pickle=True)\n",
                   "import numpy as np\nnp.load('a.npy', allow_pickle=False)\n"),
    "numpy-load:default": ("import numpy\nnumpy.load('a.npz')\n",
                           "import numpy\nnumpy.load('a.npz', None, False)\n"),
    "numpy-load:safetensors": ("from numpy import load\nload('a.npz')\n",
                               "from safetensors.numpy import load\nload(data)\n"),
    "keras-load-model": ("import keras\nkeras.saving.load_model('m.keras')\n",
                         "import keras\nkeras.saving.load_model('m.keras', safe_mode=True)\n"),
    "keras-load-model:models": (
        "from keras import models\nmodels.load_model('m.keras', safe_mode=False)\n",
        "from keras import models\nmodels.load_model('m.keras', safe_mode=True)\n"),
    "tar-extract": ("import tarfile\nwith tarfile.open('a.tgz') as t:\n    t.extractall('d')\n",
                    "import tarfile\nwith tarfile.open('a.tgz') as t:\n"
                    "    t.extractall('d', filter='data')\n"),
    "tar-extract:member": ("import tarfile\ntarfile.open('a.tgz').extract('m', 'd')\n",
                           "import tarfile\ntarfile.open('a.tgz').extract("
                           "'m', 'd', filter=tarfile.data_filter)\n"),
    "tar-extract:shutil": ("import shutil\nshutil.unpack_archive('a.tgz', 'd')\n",
                           "import shutil\nshutil.unpack_archive('a.tgz', 'd', filter='data')\n"),
    "yaml-load": ("import yaml\nyaml.load(text)\n",
                  "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\n"),
    "yaml-load:loader": ("import yaml\nyaml.load(text, yaml.Loader)\n",
                         "import yaml\nyaml.load_all(text, yaml.CSafeLoader)\n"),
    "yaml-load:unsafe": ("import yaml\nyaml.unsafe_load(text)\n",
                         "import yaml\nyaml.safe_load(text)\n"),
    "shell": ("import subprocess\nsubprocess.run('ls', shell=True)\n",
              "import subprocess\nsubprocess.run(['ls'], shell=False)\n"),
    "shell:popen": ("from subprocess import Popen\nPopen(cmd, shell=flag)\n",
                    "from subprocess import Popen\nPopen(cmd)\n"),
    "shell:os": ("import os\nos.system('ls')\n", "import os\nos.listdir('.')\n"),
}


@pytest.mark.parametrize("case", list(TWINS))
def test_each_rule_catches_its_breach(case: str) -> None:
    bad, good = TWINS[case]
    rule = case.split(":")[0]
    found = check_source(bad)
    assert rule in {v.rule for v in found}, found
    assert check_source(good) == []


def test_breaches_are_reported_with_their_line() -> None:
    source = "import json\n\nimport torch\nx = torch.load('m.pt')\ny = eval('1')\n"
    assert check_source(source) == [Violation(4, "torch-load"), Violation(5, "builtin-eval")]
