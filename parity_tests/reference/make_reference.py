"""Record TensorFlow's outputs for the "Word embeddings" tutorial as parity fixtures.

Runs only where the ``tf`` extra is installed (``nox -s parity_live`` does it);
everything it writes is read back by the offline parity tests, which need no
TensorFlow.  The tutorial is reproduced as written: the same directory walk,
split, cached tf.data pipeline, custom standardization and model.

What it records into ``--out`` (default: ``parity_tests/fixtures``):

* ``tutorial_text.json``: the training/validation file lists (as SHA-256 of the
  newline-joined relative paths, plus the first names of each pass-0 order), the
  10,000-token vocabulary, and one 16-hex-digit hash per review of its int64
  sequence, for all 25,000 reviews in sorted-walk order.
* ``tutorial_history.json``: per-epoch ``fit`` history of the tutorial for seeds
  0-4, where "seed s" means ``keras.utils.set_random_seed(s)`` right after
  ``adapt`` and before the model is built.
* ``flags_history.json``: the same history for the tutorial with other settings
  (:data:`FLAG_SETS`): its constants replaced (learning rate; widths, vocabulary and
  sequence length; batch size, split and seeds), and, for ``reshuffle``, ``.cache()``
  removed from the training dataset.  ``--flagsets-only`` records just this file.
* ``preset_history.json``: the seed-0 history of every preset other than the tutorial
  (``embeddings.config.PRESETS``: ``TextVectorization(ngrams=...)``,
  ``Embedding(mask_zero=True)``, its batch size, learning rate and epochs).
  ``--presets-only`` records just this file.

Usage::

    python parity_tests/reference/make_reference.py --data aclImdb-train.tar.gz
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import string
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

# The weights in TensorFlow's model.get_weights() order, under their native names.
from embeddings.config import PRESETS
from embeddings.weights import NAMES as WEIGHT_NAMES


def _atomic_write_json(path: Path, obj: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _train_dir(data: Path, workdir: Path) -> Path:
    """Return the ``aclImdb/train`` directory, extracting ``data`` if it is a tarball."""
    if data.is_dir():
        return data / "train" if (data / "train").is_dir() else data
    with tarfile.open(data) as tar:
        members = [m for m in tar.getmembers()
                   if "/train/neg/" in m.name or "/train/pos/" in m.name]
        tar.extractall(workdir, members=members, filter="data")
    return workdir / "aclImdb" / "train"


def sequence_hash(row: np.ndarray) -> str:
    """First 16 hex digits of the SHA-256 of an int64 little-endian sequence."""
    return hashlib.sha256(np.ascontiguousarray(row, dtype="<i8").tobytes()).hexdigest()[:16]


# The tutorial's constants, named as the embeddings flags are, and the other settings
# recorded by flags_history.json (each a set of flags different from the tutorial's).
TUTORIAL = {"vocab_size": 10000, "sequence_length": 100, "embedding_dim": 16,
            "hidden_units": 16, "batch_size": 1024, "validation_split": 0.2, "split_seed": 123,
            "seed": 0, "learning_rate": 0.001, "reshuffle": False, "epochs": 15, "ngrams": 1,
            "mask_padding": False}
# learning_rate_steep stops at 3 epochs: at 0.01 the run turns unstable after epoch 6
# (val_accuracy falls from 0.831 to 0.763 by epoch 15), and there the float32 rounding of
# the dense layers' reductions, which no port reproduces bit for bit (PARITY.md section 8),
# grows about tenfold per epoch (measured: loss 1e-7 apart at epoch 6, 5e-3 at epoch 13).
FLAG_SETS = {
    "learning_rate": {"learning_rate": 0.005},
    "learning_rate_steep": {"learning_rate": 0.01, "epochs": 3},
    "widths": {"vocab_size": 5000, "sequence_length": 50, "embedding_dim": 8,
               "hidden_units": 4},
    "batch_split_seeds": {"batch_size": 512, "validation_split": 0.1, "split_seed": 7,
                          "seed": 3},
    "reshuffle": {"reshuffle": True},
}


def custom_standardization(input_data):  # noqa: ANN001, ANN201 - the tutorial's, verbatim
    import tensorflow as tf

    lowercase = tf.strings.lower(input_data)
    stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
    return tf.strings.regex_replace(
        stripped_html, "[%s]" % re.escape(string.punctuation), ""  # noqa: UP031 - the tutorial's code
    )


def tutorial_history(train_dir: Path, settings: dict, tf, keras) -> dict:  # noqa: ANN001
    """The tutorial as written, with ``settings`` in place of its constants; ``reshuffle``
    drops ``.cache()`` from the training dataset.  Returns the ``fit`` history."""
    s = {**TUTORIAL, **settings}
    tf.random.set_seed(None)  # as in a fresh process: no global seed when the datasets are made
    kwargs = dict(batch_size=s["batch_size"], validation_split=s["validation_split"],
                  seed=s["split_seed"])
    train_ds = keras.utils.text_dataset_from_directory(train_dir, subset="training", **kwargs)
    val_ds = keras.utils.text_dataset_from_directory(train_dir, subset="validation", **kwargs)
    train_ds = (train_ds if s["reshuffle"] else train_ds.cache()).prefetch(tf.data.AUTOTUNE)
    val_ds = val_ds.cache().prefetch(tf.data.AUTOTUNE)
    vectorize_layer = keras.layers.TextVectorization(
        standardize=custom_standardization, max_tokens=s["vocab_size"], output_mode="int",
        output_sequence_length=s["sequence_length"],
        ngrams=None if s["ngrams"] == 1 else tuple(range(1, s["ngrams"] + 1)))
    vectorize_layer.adapt(train_ds.map(lambda x, y: x))
    keras.utils.set_random_seed(s["seed"])
    model = keras.Sequential([
        vectorize_layer,
        keras.layers.Embedding(s["vocab_size"], s["embedding_dim"],
                               mask_zero=s["mask_padding"], name="embedding"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(s["hidden_units"], activation="relu"),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=s["learning_rate"]),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    hist = model.fit(train_ds, validation_data=val_ds, epochs=s["epochs"], verbose=0)
    return {k: [float(x) for x in v] for k, v in hist.history.items()}


def record_flagsets(train_dir: Path, out: Path, meta: dict, tf, keras) -> None:  # noqa: ANN001
    """Write ``flags_history.json``: the history of every set of :data:`FLAG_SETS`."""
    flagsets = {}
    for name, settings in FLAG_SETS.items():
        history = tutorial_history(train_dir, settings, tf, keras)
        flagsets[name] = {"settings": settings, "history": history}
        print(f"{name}: val_accuracy {history['val_accuracy']}", flush=True)
    _atomic_write_json(out / "flags_history.json", {
        "meta": meta,
        "what": "the tutorial with these settings in place of its constants; reshuffle: "
                "without .cache() on the training dataset",
        "tutorial": TUTORIAL,
        "flagsets": flagsets,
    })
    print(f"wrote {out / 'flags_history.json'}", flush=True)


def record_presets(train_dir: Path, out: Path, meta: dict, tf, keras) -> None:  # noqa: ANN001
    """Write ``preset_history.json``: the seed-0 history of every preset but the tutorial."""
    presets = {}
    for name, settings in PRESETS.items():
        if name == "tutorial":
            continue
        history = tutorial_history(train_dir, settings, tf, keras)
        presets[name] = {"settings": settings, "history": history}
        print(f"preset {name}: val_accuracy {history['val_accuracy']}", flush=True)
    _atomic_write_json(out / "preset_history.json", {
        "meta": meta,
        "what": "the tutorial with each preset's settings in place of its constants, seed 0",
        "tutorial": TUTORIAL,
        "presets": presets,
    })
    print(f"wrote {out / 'preset_history.json'}", flush=True)


def _meta(tf, keras) -> dict:  # noqa: ANN001
    return {
        "made_by": "parity_tests/reference/make_reference.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def _weights(model: object) -> dict[str, np.ndarray]:
    """The tutorial model's trainable weights under the native names, in Keras layout."""
    return dict(zip(WEIGHT_NAMES, (np.asarray(w) for w in model.get_weights()), strict=True))


def _weights_digest(weights: dict[str, np.ndarray]) -> str:
    blob = b"".join(np.ascontiguousarray(weights[n], dtype="<f4").tobytes() for n in WEIGHT_NAMES)
    return hashlib.sha256(blob).hexdigest()


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def record_steps(model, train_ds, val_texts: list[bytes], val_names: list[str], out: Path,  # noqa: ANN001
                 meta: dict, tf, keras) -> None:  # noqa: ANN001
    """Seed 0 at step 0: initial weights (digest), logits, loss, gradients, one Adam step.

    The step is taken on a copy of the state and undone, so the seed-0 ``fit`` that
    follows starts from the same initial weights.
    """
    texts, labels = next(iter(train_ds))  # the first batch of the cached first pass
    init_logits = model(tf.constant(val_texts))  # builds the weights (seeds are fixed)
    initial = _weights(model)
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        logits = model(texts, training=True)
        loss = model.loss(tf.cast(labels, tf.float32)[:, None], logits)
    grads = tape.gradient(loss, variables)
    emb_grad = grads[0]  # IndexedSlices: one row per token occurrence
    dense_grads = [tf.convert_to_tensor(g).numpy() for g in grads]
    grad_sq = tf.math.unsorted_segment_sum(tf.square(emb_grad.values), emb_grad.indices,
                                           emb_grad.dense_shape[0]).numpy()
    model.optimizer.apply_gradients(zip(grads, variables, strict=True))
    stepped = _weights(model)
    model.set_weights([initial[n] for n in WEIGHT_NAMES])
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # a fresh optimizer for the fit that follows
    arrays = {"val64_logits": np.asarray(init_logits)[:, 0],
              "batch0_logits": np.asarray(logits)[:, 0],
              "grad_sq/embedding.embeddings": grad_sq}
    arrays.update({f"grad/{n}": g for n, g in zip(WEIGHT_NAMES, dense_grads, strict=True)})
    arrays.update({f"step1/{n}": w for n, w in stepped.items()})
    _atomic_savez(out / "tutorial_step0.npz", arrays)
    _atomic_write_json(out / "tutorial_step0.json", {
        "meta": meta,
        "what": "seed 0: initial weights, first training batch of pass 0, one Adam step",
        "initial_weights_sha256": _weights_digest(initial),
        "batch0_loss": float(loss),
        "val64_paths": val_names,
        "arrays": "tutorial_step0.npz (val64_logits: the reviews of val64_paths)",
    })


def record_trajectory(model, steps: list[float], out: Path, meta: dict) -> None:  # noqa: ANN001
    """Seed 0 after 15 epochs: the running mean loss after every step, and final weights."""
    _atomic_savez(out / "tutorial_final.npz", {f"final/{n}": w for n, w in
                                                 _weights(model).items()})
    _atomic_write_json(out / "tutorial_trajectory.json", {
        "meta": meta,
        "what": "seed 0: Keras's running mean training loss after each of the 300 steps",
        "step_loss_running_mean": steps,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="aclImdb directory or tarball")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "fixtures")
    parser.add_argument("--seeds", type=int, default=5, help="seeded tutorial runs to record")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--flagsets-only", action="store_true",
                        help="record only flags_history.json")
    parser.add_argument("--presets-only", action="store_true",
                        help="record only preset_history.json")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = _train_dir(args.data, Path(tmp))
        if args.flagsets_only:
            record_flagsets(train_dir, args.out, _meta(tf, keras), tf, keras)
            return
        if args.presets_only:
            record_presets(train_dir, args.out, _meta(tf, keras), tf, keras)
            return

        # --- The tutorial, as written. ---------------------------------------
        batch_size = 1024
        seed = 123
        train_ds = keras.utils.text_dataset_from_directory(
            train_dir, batch_size=batch_size, validation_split=0.2, subset="training", seed=seed
        )
        val_ds = keras.utils.text_dataset_from_directory(
            train_dir, batch_size=batch_size, validation_split=0.2, subset="validation", seed=seed
        )
        # The file lists, from the same Keras functions text_dataset_from_directory calls.
        from keras.src.utils import dataset_utils

        paths, labels, _ = dataset_utils.index_directory(
            train_dir, "inferred", formats=(".txt",), shuffle=True, seed=seed, verbose=False
        )
        train_paths, val_paths = (
            [str(Path(p).relative_to(train_dir)) for p in
             dataset_utils.get_training_or_validation_split(paths, labels, 0.2, subset)[0]]
            for subset in ("training", "validation")
        )
        train_ds = train_ds.cache().prefetch(buffer_size=tf.data.AUTOTUNE)
        val_ds = val_ds.cache().prefetch(buffer_size=tf.data.AUTOTUNE)

        vocab_size = 10000
        sequence_length = 100
        vectorize_layer = keras.layers.TextVectorization(
            standardize=custom_standardization,
            max_tokens=vocab_size,
            output_mode="int",
            output_sequence_length=sequence_length,
        )
        vectorize_layer.adapt(train_ds.map(lambda x, y: x))
        vocabulary = [str(t) for t in vectorize_layer.get_vocabulary()]

        # pass-0 order of each subset: what every epoch sees because of .cache().  The
        # pass is completed, so that the cache is filled (a partial pass leaves it empty
        # and the next iterator would shuffle anew).
        def first_names(ds: tf.data.Dataset, n: int = 5) -> list[str]:
            batches = [texts for texts, _ in ds]
            texts = batches[0].numpy()[:n]
            by_bytes = {}
            for rel in train_paths + val_paths:
                by_bytes.setdefault((train_dir / rel).read_bytes(), rel)
            return [by_bytes[t] for t in texts]

        # --- Sequences of every review, in sorted-walk order. ----------------
        all_paths = sorted(train_paths + val_paths, key=lambda p: (p.split("/")[0], p))
        hashes = []
        for start in range(0, len(all_paths), 2048):
            chunk = [(train_dir / p).read_bytes() for p in all_paths[start : start + 2048]]
            ids = vectorize_layer(tf.constant(chunk)).numpy()
            hashes.extend(sequence_hash(row) for row in ids)

        def digest(paths: list[str]) -> str:
            return hashlib.sha256("\n".join(paths).encode()).hexdigest()

        meta = _meta(tf, keras)
        _atomic_write_json(
            args.out / "tutorial_text.json",
            {
                "meta": meta,
                "split": {
                    "train_count": len(train_paths),
                    "val_count": len(val_paths),
                    "train_paths_sha256": digest(train_paths),
                    "val_paths_sha256": digest(val_paths),
                    "train_paths_head": train_paths[:5],
                    "val_paths_head": val_paths[:5],
                    "train_pass0_head": first_names(train_ds),
                    "val_pass0_head": first_names(val_ds),
                },
                "vocabulary": vocabulary,
                "sequence_hash": "sha256 of the int64 little-endian row, first 16 hex digits",
                "sequence_order": "sorted walk: neg/ then pos/, file names in Python string order",
                "sequence_hashes": hashes,
            },
        )
        print(f"wrote {args.out / 'tutorial_text.json'}", flush=True)

        # --- Seeded runs of the tutorial model. ------------------------------
        def build_model() -> keras.Sequential:
            model = keras.Sequential(
                [
                    vectorize_layer,
                    keras.layers.Embedding(vocab_size, 16, name="embedding"),
                    keras.layers.GlobalAveragePooling1D(),
                    keras.layers.Dense(16, activation="relu"),
                    keras.layers.Dense(1),
                ]
            )
            model.compile(
                optimizer="adam",
                loss=keras.losses.BinaryCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            return model

        histories = {}
        for s in range(args.seeds):
            keras.utils.set_random_seed(s)
            model = build_model()
            steps: list[float] = []
            if s == 0:
                names = val_paths[:64]
                record_steps(model, train_ds, [(train_dir / p).read_bytes() for p in names],
                             names, args.out, meta, tf, keras)
                callbacks = [keras.callbacks.LambdaCallback(
                    on_train_batch_end=lambda batch, logs, steps=steps: steps.append(
                        float(logs["loss"])))]
            else:
                callbacks = []
            hist = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=2,
                             callbacks=callbacks)
            histories[str(s)] = {k: [float(x) for x in v] for k, v in hist.history.items()}
            print(f"seed {s}: val_accuracy {histories[str(s)]['val_accuracy']}", flush=True)
            if s == 0:
                record_trajectory(model, steps, args.out, meta)
        _atomic_write_json(
            args.out / "tutorial_history.json",
            {
                "meta": meta,
                "seed_means": "keras.utils.set_random_seed(s) after adapt, before the model",
                "epochs": args.epochs,
                "histories": histories,
            },
        )
        print(f"wrote {args.out / 'tutorial_history.json'}", flush=True)
        record_flagsets(train_dir, args.out, meta, tf, keras)
        record_presets(train_dir, args.out, meta, tf, keras)


if __name__ == "__main__":
    main()
