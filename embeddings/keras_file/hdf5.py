"""The weights of a Keras HDF5 file (``.weights.h5``, alone or inside a ``.keras``), read
as data and trusting nothing the file declares.

Only the ``layers/<name>/vars/<i>`` datasets of the tutorial model are reached, through
hard links only (an external or soft link is refused, never followed).  Each dataset is
refused before anything is allocated when it uses external storage, is virtual, filtered
or chunked (Keras writes weights uncompressed and contiguous), is not float32, or stores
fewer bytes than it declares; the shapes must fit together and the total must fit in the
available memory.  NaN and infinity are refused once read.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from embeddings import weights
from embeddings.errors import InvalidInput, MissingExtra
from embeddings.keras_file.architecture import RESAVE, RESAVE_SENTENCE, SHORT
from embeddings.memory import check_fits

# Copies of the weights alive while a run is written: the arrays, the safetensors bytes,
# and the Projector's text (about twice the arrays).
_WORKING_COPIES = 4


def h5py_module() -> Any:
    try:
        import h5py
    except ImportError as err:
        raise MissingExtra(
            "Reading Keras files needs h5py: pip install 'embeddings[keras]'"
        ) from err
    return h5py


def _member(h5py: Any, group: Any, name: str, kind: str, where: str) -> Any:
    """``group[name]`` if it is a hard link to a ``kind`` (``"group"`` or ``"dataset"``),
    ``None`` if absent; a soft or external link is refused, never followed.

    Raises:
        InvalidInput: a link other than a hard link, or an object of another kind.
    """
    at = f"{group.name.rstrip('/')}/{name}"
    if not name or "/" in name or name in (".", ".."):  # a path would pass through links
        raise InvalidInput(f"{where}: {at!r} is not a layer or variable name. Received: "
                           f"name={name!r}; {RESAVE}.")
    link = group.get(name, getlink=True)
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise InvalidInput(f"{where}: {at} is an HDF5 external link to "
                           f"{link.filename}:{link.path}; weights must be stored in the file "
                           f"itself. Received: a link to another file; {RESAVE}.")
    if not isinstance(link, h5py.HardLink):
        target = getattr(link, "path", type(link).__name__)
        raise InvalidInput(f"{where}: {at} is an HDF5 soft link to {target}; weights must be "
                           f"stored where Keras puts them. Received: a link; {RESAVE}.")
    found = group[name]
    if not isinstance(found, h5py.Group if kind == "group" else h5py.Dataset):
        raise InvalidInput(f"{where}: {at} must be an HDF5 {kind}. Received: "
                           f"{type(found).__name__}; {RESAVE}.")
    return found


def _layer_vars(h5py: Any, layers: Any, name: str, where: str) -> list[Any]:
    """The datasets ``layers/<name>/vars/0, 1, ...`` in slot order (nothing is read)."""
    layer = _member(h5py, layers, name, "group", where)
    variables = None if layer is None else _member(h5py, layer, "vars", "group", where)
    if variables is None:
        return []
    slots = list(variables)
    if sorted(slots) != sorted(str(i) for i in range(len(slots))):
        raise InvalidInput(f"{where}: the variables of layer {name!r} must be named 0, 1, ... "
                           f"Received: {SHORT.repr(slots)}; {RESAVE}.")
    return [_member(h5py, variables, str(i), "dataset", where) for i in range(len(slots))]


def _check_dataset(h5py: Any, dset: Any, label: str, where: str) -> int:
    """Refuse a weight dataset Keras would not write (``label``: its path); return its size
    in bytes.

    Raises:
        InvalidInput: external storage, a virtual dataset, a filter, chunked storage, a
            dtype other than float32, a shape not 1-D or 2-D with positive sizes, or
            stored bytes that differ from the declared shape.
    """
    plist, shape = dset.id.get_create_plist(), tuple(dset.shape or ())  # None: no space
    try:
        dtype = str(dset.dtype)
    except TypeError:  # an HDF5 type NumPy has no equivalent for
        dtype = "a type NumPy cannot hold"
    problem = None
    if plist.get_external_count():
        other = plist.get_external(0)[0].decode(errors="replace")
        problem = f"uses HDF5 external storage (its bytes live in {other!r})"
    elif dset.is_virtual:
        problem = "is a virtual dataset (its bytes live in other datasets or files)"
    elif plist.get_nfilters():
        filters = [plist.get_filter(i)[3].decode(errors="replace")
                   for i in range(plist.get_nfilters())]
        problem = f"is filtered ({', '.join(filters)}); Keras writes weights uncompressed"
    elif plist.get_layout() not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT):
        problem = "is chunked; Keras writes weights contiguous"
    elif dtype not in ("float32", ">f4"):
        problem = f"must hold float32 weights, not {dtype}"
    elif not 1 <= len(shape) <= 2 or min(shape) < 1:
        problem = f"must be a 1-D or 2-D array of float32, not of shape {shape}"
    if problem is None:
        declared, stored = 4 * math.prod(shape), dset.id.get_storage_size()
        if stored == declared:
            return declared
        problem = (f"declares shape {shape} ({declared:,} bytes) but the file stores "
                   f"{stored:,} bytes of it")
    raise InvalidInput(f"{where}: {label} {problem}. Received: a damaged or hostile "
                       f"weights file; {RESAVE}.")


def _read_dataset(dset: Any, label: str, layer: str, where: str) -> np.ndarray:
    """A checked dataset's values (variable ``label`` of ``layer``) as a float32 array;
    NaN and infinity are refused."""
    array = np.empty(dset.shape, dtype=np.float32)
    dset.read_direct(array)
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        raise InvalidInput(f"{where}: {label} (layer {layer!r}) holds "
                           f"{bad:,} NaN or infinite values. Received: non-finite weights; "
                           "use a model saved before training diverged.")
    return array


def _roles_from_groups(groups: dict[str, list[Any]], where: str) -> dict[str, str]:
    """Without a config (``.weights.h5``): the embedding has one 2-D variable, a Dense two."""
    tables = [n for n, v in groups.items() if len(v) == 1 and v[0].ndim == 2]
    dense = [n for n, v in groups.items() if len(v) == 2 and v[0].ndim == 2 and v[1].ndim == 1]
    if len(tables) != 1 or len(dense) != 2:
        raise InvalidInput(
            f"{where} is not the tutorial model's weights (one embedding table, two Dense "
            f"layers). Received: layers={SHORT.repr(sorted(groups))}; convert only that model."
        )
    last = [n for n in dense if groups[n][0].shape[1] == 1]
    if len(last) != 1:
        raise InvalidInput(f"{where}: cannot tell the output Dense layer apart. Received: "
                           f"layers={dense}; convert only the tutorial model.")
    first = next(n for n in dense if n != last[0])
    return dict(zip(weights.LAYERS, [tables[0], first, last[0]], strict=True))


def _weight_datasets(h5py: Any, handle: Any, roles: dict[str, str] | None,
                     where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The five weight datasets of an open HDF5 file by native name, and the layer roles
    (:data:`weights.LAYERS` -> layer names); no dataset is read.

    Raises:
        InvalidInput: the file is not the tutorial model's weights.
    """
    layers = _member(h5py, handle, "layers", "group", where)
    if layers is None:
        raise InvalidInput(f"{where} holds no Keras layer weights (no 'layers' group). "
                           f"Received: another HDF5 file; {RESAVE}.")
    names = list(layers) if roles is None else list(roles.values())
    groups = {name: _layer_vars(h5py, layers, name, where) for name in names}
    roles = roles or _roles_from_groups(groups, where)
    datasets = {}
    for w in weights.WEIGHTS:
        found = groups[roles[w.layer]]
        if len(found) <= w.slot:
            raise InvalidInput(f"{where}: layer {roles[w.layer]!r} has no variable {w.slot}. "
                               f"Received: a model without it; {RESAVE}.")
        datasets[w.native] = found[w.slot]
    return datasets, roles


def read_weights(source: Path | io.BytesIO, roles: dict[str, str] | None, where: str,
                  held: int) -> dict[str, np.ndarray]:
    """The five weights of an HDF5 weights file, under their native names.

    Every dataset is checked (:func:`_check_dataset`), the shapes against each other and
    the total against the available memory, before any array is allocated.

    Args:
        source (Path | io.BytesIO): the ``.weights.h5`` file, or its bytes.
        roles (dict[str, str] | None): weights.LAYERS -> layer names, from the config;
            ``None`` to tell them by their shapes.
        where (str): how to name the file in an error.
        held (int): bytes of the file already in memory.

    Raises:
        InvalidInput: the file is not the tutorial model's weights or breaks a rule above.
    """
    h5py = h5py_module()
    try:
        handle = h5py.File(source, "r")
    except OSError as err:
        raise InvalidInput(f"{where} is neither a .keras archive nor an HDF5 weights file: "
                           f"{err}. Received: another file; pass the path of a .keras or "
                           ".weights.h5 file.") from err
    try:
        with handle:
            datasets, roles = _weight_datasets(h5py, handle, roles, where)
            layer = {w.native: roles[w.layer] for w in weights.WEIGHTS}
            label = {w.native: f"/layers/{roles[w.layer]}/vars/{w.slot}" for w in weights.WEIGHTS}
            total = sum(_check_dataset(h5py, d, label[n], where) for n, d in datasets.items())
            try:
                weights.dims(datasets, where)
            except ValueError as err:
                raise InvalidInput(f"{err} {RESAVE_SENTENCE}") from err
            check_fits(held + _WORKING_COPIES * total,
                       f"{where}: converting its {total:,} bytes of weights",
                       "Convert it on a machine with more memory.")
            return {n: _read_dataset(d, label[n], layer[n], where) for n, d in datasets.items()}
    except (OSError, RuntimeError) as err:  # h5py's errors on a damaged file
        raise InvalidInput(f"{where} is not a readable HDF5 weights file: {err}. Received: "
                           f"a damaged file; {RESAVE}.") from err
