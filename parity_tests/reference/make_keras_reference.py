"""Record a small TensorFlow-trained tutorial model for the conversion parity test.

Runs only with the ``tf`` extra.  Trains the tutorial (TextVectorization inside
the model, as the tutorial builds it) for ten epochs with a 1,000-token
vocabulary so the files stay small, and writes into ``--out``
(default ``parity_tests/fixtures/keras``):

* ``tutorial_small.keras``: the whole model, ``TextVectorization`` included;
* ``tutorial_small.weights.h5`` and ``tutorial_small.vocabulary.txt``: the same
  weights without the vectorizer, and its vocabulary, one token per line;
* ``tutorial_small_logits.json``: TensorFlow's logits for the first 64 validation
  reviews (named by path), with the versions and date that made them.

Usage::

    python parity_tests/reference/make_keras_reference.py --data aclImdb-train.tar.gz
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import string
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_reference import _atomic_write_json, _train_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="aclImdb directory or tarball")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "fixtures" / "keras")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        train_dir = _train_dir(args.data, Path(tmp))
        kwargs = dict(batch_size=1024, validation_split=0.2, seed=123)
        train_ds = keras.utils.text_dataset_from_directory(train_dir, subset="training", **kwargs)
        val_ds = keras.utils.text_dataset_from_directory(train_dir, subset="validation", **kwargs)
        train_ds, val_ds = train_ds.cache(), val_ds.cache()

        def custom_standardization(input_data: tf.Tensor) -> tf.Tensor:
            lowercase = tf.strings.lower(input_data)
            stripped_html = tf.strings.regex_replace(lowercase, "<br />", " ")
            return tf.strings.regex_replace(
                stripped_html, "[%s]" % re.escape(string.punctuation), ""  # noqa: UP031
            )

        vectorize_layer = keras.layers.TextVectorization(
            standardize=custom_standardization, max_tokens=1000, output_mode="int",
            output_sequence_length=100)
        vectorize_layer.adapt(train_ds.map(lambda x, y: x))
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            vectorize_layer,
            keras.layers.Embedding(1000, 16, name="embedding"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),
        ])
        model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(train_ds, validation_data=val_ds, epochs=10, verbose=2)

        from keras.src.utils import dataset_utils

        paths, labels, _ = dataset_utils.index_directory(
            train_dir, "inferred", formats=(".txt",), shuffle=True, seed=123, verbose=False)
        val_paths = dataset_utils.get_training_or_validation_split(
            paths, labels, 0.2, "validation")[0]
        chosen = list(val_paths[:64])  # the split order mixes both classes
        texts = [Path(p).read_bytes() for p in chosen]
        logits = model.predict(tf.constant(texts), verbose=0)[:, 0]

        model.save(args.out / "tutorial_small.keras")
        model.save_weights(args.out / "tutorial_small.weights.h5")
        vocab = "".join(t + "\n" for t in vectorize_layer.get_vocabulary())
        (args.out / "tutorial_small.vocabulary.txt").write_text(vocab, encoding="utf-8")
        _atomic_write_json(args.out / "tutorial_small_logits.json", {
            "meta": {
                "made_by": "parity_tests/reference/make_keras_reference.py",
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "tensorflow": tf.__version__, "keras": keras.__version__,
                "platform": platform.platform(),
            },
            "paths": [str(Path(p).relative_to(train_dir)) for p in chosen],
            "logits": [float(x) for x in np.asarray(logits, dtype=np.float32)],
        })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
