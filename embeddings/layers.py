"""``TextVectorization`` as a Keras 3 layer on the torch, JAX and NumPy backends, with no
TensorFlow in the process.

Keras's own ``keras.layers.TextVectorization`` runs TensorFlow string ops inside, on
every backend.  This layer has its constructor, methods, configuration and saved state,
and hands the work to :class:`embeddings.text.TextVectorization` (byte-exact with
TensorFlow, NumPy outputs), converting each output to the backend's tensor.

Importing this module imports Keras on the backend Keras is configured for
(``KERAS_BACKEND``); it never sets one.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from embeddings.errors import MissingExtra
from embeddings.text import TextLike
from embeddings.text import TextVectorization as Engine

try:
    import keras
except ImportError as err:  # pragma: no cover - exercised only without the extra
    if importlib.util.find_spec("keras") is None:
        raise MissingExtra("embeddings.layers needs Keras 3: pip install 'embeddings[keras]'"
                           ) from err
    raise MissingExtra(
        f"Keras is installed but its backend did not load ({err}). Received: "
        f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r}; set KERAS_BACKEND to torch, "
        "jax or numpy (Keras's default, tensorflow, needs TensorFlow)."
    ) from err

_CALLABLE_ARGS = ("standardize", "split")


def _tensorflow_backend() -> bool:
    return bool(keras.backend.backend() == "tensorflow")


def _callable_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` as Keras's ``Layer.__call__`` can take them: it reads the dtype of a first
    argument that is a backend tensor, and on the NumPy backend a NumPy array of strings is
    one, with a dtype Keras refuses (``Invalid dtype: str96``); it goes on as lists."""
    first = args[0] if args else None
    if isinstance(first, np.ndarray) and first.dtype.kind in "USO" and \
            keras.ops.is_tensor(first):
        return (first.tolist(), *args[1:])
    return args


@keras.saving.register_keras_serializable(package="embeddings")
class TextVectorization(keras.layers.Layer):
    """Turn raw strings into token ids or token-count vectors: Keras's
    ``TextVectorization`` on any Keras backend, without TensorFlow.

    The layer learns its vocabulary with :meth:`adapt` on raw strings (a list, a NumPy
    array, or an iterable of batches), and calling it on strings returns the backend's
    tensor: a ``torch.Tensor``, a ``jax.Array`` or a ``np.ndarray``.  Keras cannot feed
    strings through ``Model.fit`` or ``Model.predict`` on torch or JAX (its data adapters
    turn every input into a numeric tensor), so the layer belongs in the data pipeline:
    vectorize the texts, then fit and predict a model on the ids.  :class:`TextModel` puts
    it in front of a trained model for raw strings in, scores out (called directly, not
    through ``predict``); ``model.save`` / ``keras.saving.load_model`` keep its vocabulary
    (a Keras asset) and its IDF weights (a variable of the ``.keras`` file).

    Args:
        max_tokens (int | None): vocabulary size including the special ids (``''`` and
            ``'[UNK]'`` in ``int`` mode, ``'[UNK]'`` otherwise); ``None`` keeps every
            token. Default: ``None``.
        standardize (str | Callable | None): ``"lower_and_strip_punctuation"``,
            ``"lower"``, ``"strip_punctuation"``, ``"tutorial"``, ``None``, or a callable
            from a NumPy array of ``str`` to strings of the same shape (what Keras hands
            it on non-TensorFlow backends). Default: ``"lower_and_strip_punctuation"``.
        split (str | Callable | None): ``"whitespace"``, ``"character"``, ``None``, or a
            callable from a 1-D NumPy array of ``str`` to one token list per string.
            Default: ``"whitespace"``.
        ngrams (int | tuple[int, ...] | None): ``n`` makes 1- to n-grams; a tuple makes
            those widths. Default: ``None``.
        output_mode (str): ``"int"``, ``"multi_hot"``, ``"count"``, ``"tf_idf"`` or
            ``"one_hot"`` (``split=None`` only). Default: ``"int"``.
        output_sequence_length (int | None): ``int`` mode: pad or truncate to this
            length. Default: ``None`` (the longest row of each call).
        pad_to_max_tokens (bool): other modes: make the last axis ``max_tokens`` long.
            Default: ``False``.
        vocabulary (Sequence | np.ndarray | str | os.PathLike | None): tokens, or a file
            with one per line. Default: ``None``.
        idf_weights (Sequence[float] | np.ndarray | None): ``tf_idf`` weights for
            ``vocabulary``. Default: ``None``.
        sparse (bool): refused: a sparse output needs TensorFlow's backend and
            ``SparseTensor``. Default: ``False``.
        ragged (bool): refused: a ragged output needs TensorFlow's ``RaggedTensor``.
            Default: ``False``.
        encoding (str): how bytes are decoded for :meth:`get_vocabulary` and callables.
            Default: ``"utf-8"``.
        name (str | None): the layer's name. Default: ``None``.
        **kwargs: ``keras.layers.Layer``'s arguments, and ``vocabulary_size`` (written
            by :meth:`get_config`).

    Input shape:
        Strings: a scalar, ``(N,)`` or ``(N, 1)`` (with ``split=None``, ``(N, K)``); a
        list, tuple or NumPy array (torch and JAX tensors cannot hold strings).

    Output shape:
        ``int`` mode: ``(N, T)`` ids, ``T`` the ``output_sequence_length`` or the longest
        row.  Other modes: ``(N, depth)``, ``depth`` the vocabulary size or
        ``max_tokens``.  The dtypes are TensorFlow's: float32 for ``tf_idf``, int64
        otherwise (int32 on JAX without ``jax_enable_x64``, as Keras's layer gives there).

    Raises:
        ValueError: ``sparse=True``, ``ragged=True``, or a bad argument or combination
            (the message names it).

    >>> layer = TextVectorization(max_tokens=5000, output_sequence_length=4)
    >>> layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    >>> keras.ops.convert_to_numpy(layer([["foo qux bar"], ["qux baz"]])).tolist()
    [[4, 1, 3, 0], [1, 2, 0, 0]]

    The pattern on torch or JAX: vectorize in the data pipeline, train on the ids::

        ids = layer(train_texts)                      # (N, T) backend tensor
        model = keras.Sequential([keras.layers.Embedding(layer.vocabulary_size(), 16),
                                  keras.layers.GlobalAveragePooling1D(),
                                  keras.layers.Dense(1)])
        model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
        model.fit(ids, labels)
        scores = model.predict(layer(new_texts))
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        standardize: str | Callable[..., Any] | None = "lower_and_strip_punctuation",
        split: str | Callable[..., Any] | None = "whitespace",
        ngrams: int | tuple[int, ...] | None = None,
        output_mode: str = "int",
        output_sequence_length: int | None = None,
        pad_to_max_tokens: bool = False,
        vocabulary: Sequence[TextLike] | np.ndarray | str | os.PathLike[str] | None = None,
        idf_weights: Sequence[float] | np.ndarray | None = None,
        sparse: bool = False,
        ragged: bool = False,
        encoding: str = "utf-8",
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        where = "the TensorFlow backend" if _tensorflow_backend() else \
            f"the {keras.backend.backend()} backend"
        if sparse:
            raise ValueError(
                "`sparse=True` can only be used with the TensorFlow backend and Keras's own "
                f"TextVectorization: this layer returns dense tensors on {where}. "
                "Received: sparse=True")
        if ragged:
            raise ValueError(
                "`ragged=True` can only be used with the TensorFlow backend and Keras's own "
                f"TextVectorization: this layer returns dense tensors on {where}. "
                "Received: ragged=True")
        vocabulary_size = kwargs.pop("vocabulary_size", None)
        engine = Engine(max_tokens=max_tokens, standardize=standardize, split=split,
                        ngrams=ngrams, output_mode=output_mode,
                        output_sequence_length=output_sequence_length,
                        pad_to_max_tokens=pad_to_max_tokens, vocabulary=vocabulary,
                        idf_weights=idf_weights, encoding=encoding,
                        vocabulary_size=vocabulary_size)
        super().__init__(name=name, **kwargs)
        self._engine = engine
        self._vocabulary_size_arg = vocabulary_size
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.supports_jit = False

    @classmethod
    def from_engine(cls, engine: Engine, **kwargs: Any) -> TextVectorization:
        """A layer that hands its work to ``engine``, adapted or not (shared, not copied).

        Args:
            engine (embeddings.text.TextVectorization): the vectorizer to wrap.
            **kwargs: ``keras.layers.Layer``'s arguments (``name``, ...).

        Raises:
            ValueError: ``engine`` is ``ragged`` (this layer returns dense tensors).
        """
        config = {**engine.get_config(), "vocabulary": None, "idf_weights": None}
        layer = cls(**config, **kwargs)
        layer._engine = engine
        return layer

    @property
    def engine(self) -> Engine:
        """The :class:`embeddings.text.TextVectorization` doing the work (NumPy outputs)."""
        return self._engine

    @property
    def compute_dtype(self) -> str:
        return "string"

    @property
    def variable_dtype(self) -> str:
        return "string"

    @property
    def idf_weights(self) -> np.ndarray | None:
        """``tf_idf`` mode: the float32 weight of every id, the OOV id's first (else ``None``)."""
        return self._engine.idf_weights

    def build(self, input_shape: Any = None) -> None:
        pass

    # -- shapes ----------------------------------------------------------------
    def _depth(self) -> int | None:
        engine = self._engine
        if engine.pad_to_max_tokens:
            return engine.max_tokens
        size = engine.vocabulary_size()  # the OOV id, then the tokens (not in int mode)
        return size if size > 1 else self._vocabulary_size_arg

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        """The output shape for an input of ``input_shape`` (Keras's rule)."""
        input_shape = tuple(input_shape)
        if self._engine.output_mode == "int":
            return (input_shape[0], self._engine.output_sequence_length)
        if self._engine.split is None:
            if len(input_shape) <= 1:
                input_shape = input_shape + (1,)
        else:
            input_shape = input_shape + (None,)
        if self._engine.output_mode == "one_hot" and len(input_shape) > 1 and \
                input_shape[-1] == 1:
            return input_shape[:-1] + (self._depth(),)
        if self._engine.output_mode == "one_hot":
            return input_shape + (self._depth(),)
        return input_shape[:-1] + (self._depth(),)

    def _output_dtype(self) -> str:
        # The engine's dtypes, TensorFlow's: float32 for tf_idf, int64 for ids and counts
        # (Keras's own compute_output_spec says floatx for counts, which its call never gives).
        return "float32" if self._engine.output_mode == "tf_idf" else "int64"

    def compute_output_spec(self, inputs: Any) -> Any:
        return keras.KerasTensor(self.compute_output_shape(inputs.shape),
                                 dtype=self._output_dtype())

    # -- vocabulary ------------------------------------------------------------
    @staticmethod
    def _strings(data: Any) -> Any:
        """``data`` as the engine reads it: a backend tensor (TensorFlow's strings) as NumPy."""
        if isinstance(data, (np.ndarray, list, tuple, str, bytes)):
            return data
        if keras.ops.is_tensor(data):
            return keras.ops.convert_to_numpy(data)
        return data

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None
              ) -> None:
        """Learn the vocabulary (and, for ``tf_idf``, the IDF weights) from raw strings.

        Args:
            data: a list, tuple or NumPy array of strings, or an iterable of batches (a
                generator, a ``tf.data.Dataset`` when TensorFlow happens to be loaded).
            batch_size (int | None): read an array this many strings at a time.
                Default: ``None``.
            steps (int | None): read at most this many batches. Default: ``None``.
        """
        if type(data).__module__.startswith("tensorflow") and hasattr(data,
                                                                      "as_numpy_iterator"):
            data = data.as_numpy_iterator()  # a tf.data.Dataset; TensorFlow is loaded already
        self._engine.adapt(self._strings(data), batch_size=batch_size, steps=steps)

    def update_state(self, data: Any) -> None:
        """Count the tokens of one batch (see :meth:`adapt`)."""
        self._engine.update_state(self._strings(data))

    def finalize_state(self) -> None:
        """Turn the counted tokens into the vocabulary."""
        self._engine.finalize_state()

    def reset_state(self) -> None:
        """Forget the tokens counted since the last :meth:`finalize_state`."""
        self._engine.reset_state()

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The tokens in id order (``''`` and ``'[UNK]'`` first unless excluded)."""
        return self._engine.get_vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        """The number of ids, the special ones included."""
        return self._engine.vocabulary_size()

    def set_vocabulary(self, vocabulary: Sequence[TextLike] | np.ndarray | str |
                       os.PathLike[str], idf_weights: Sequence[float] | np.ndarray | None =
                       None) -> None:
        """Use a given vocabulary (and, for ``tf_idf``, its IDF weights); see
        :meth:`embeddings.text.TextVectorization.set_vocabulary`."""
        self._engine.set_vocabulary(self._strings(vocabulary), idf_weights)

    # -- the call ----------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*_callable_args(args), **kwargs)

    def call(self, inputs: Any) -> Any:
        """Vectorize strings into the backend's tensor (see the class docstring)."""
        out = np.asarray(self._engine(self._strings(inputs)))
        dtype: str | None = str(out.dtype)
        if dtype == "int64" and keras.backend.backend() == "jax":
            dtype = None  # JAX's rule: int64 with jax_enable_x64, else int32 without a warning
        return keras.ops.convert_to_tensor(out, dtype=dtype)

    # -- configuration and saving --------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Keras's configuration: the layer's base keys, then ``TextVectorization``'s, a
        callable ``standardize`` or ``split`` serialized by Keras."""
        config = self._engine.get_config()
        for key in _CALLABLE_ARGS:
            if callable(config[key]):
                config[key] = keras.saving.serialize_keras_object(config[key])
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextVectorization:
        """A layer from :meth:`get_config`'s dictionary, as Keras's ``from_config`` reads it."""
        config = dict(config)
        for key in _CALLABLE_ARGS:
            if key in config and not isinstance(config[key], str):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)

    def save_own_variables(self, store: Any) -> None:
        """``tf_idf`` mode: store the IDF weights (as Keras stores its ``idf_weights``)."""
        if self._engine.output_mode == "tf_idf" and self._engine.idf_weights is not None:
            store["idf_weights"] = self._engine.idf_weights

    def load_own_variables(self, store: Any) -> None:
        """Read what :meth:`save_own_variables` stored."""
        if self._engine.output_mode == "tf_idf" and "idf_weights" in store:
            self._engine.idf_weights = np.asarray(store["idf_weights"], dtype=np.float32)

    def save_assets(self, dir_path: str) -> None:
        """Write the vocabulary as ``vocabulary.txt`` (raw bytes, one token per line) unless
        it was given to the constructor (the configuration holds it then)."""
        self._engine.save_assets(dir_path)

    def load_assets(self, dir_path: str) -> None:
        """Read what :meth:`save_assets` wrote."""
        self._engine.load_assets(dir_path)


@keras.saving.register_keras_serializable(package="embeddings")
class TextModel(keras.Model):
    """Raw strings in, a model's output out: a :class:`TextVectorization` feeding ``model``.

    Keras's functional and ``Sequential`` models turn their inputs into numeric tensors
    on torch and JAX, so neither can start with a vectorizer there; this model takes the
    strings itself.  Call it directly (``Model.predict`` converts its input too), and
    save and load it as any Keras model: the vocabulary, IDF weights and ``model``'s
    weights travel in the ``.keras`` file.

    Args:
        vectorizer (TextVectorization): turns a batch of strings into ``model``'s input.
        model (keras.Layer): a model (or layer) on the vectorizer's output.
        **kwargs: ``keras.Model``'s arguments (``name``, ...).

    >>> layer = TextVectorization(vocabulary=["good", "bad"], output_sequence_length=3)
    >>> scores = TextModel(layer, keras.layers.Embedding(4, 1, embeddings_initializer="ones"))
    >>> keras.ops.convert_to_numpy(scores(["good film"]))[..., 0].tolist()
    [[1.0, 1.0, 1.0]]
    """

    def __init__(self, vectorizer: TextVectorization, model: Any, **kwargs: Any) -> None:
        if not isinstance(vectorizer, TextVectorization):
            raise TypeError("vectorizer must be an embeddings.layers.TextVectorization. "
                            f"Received: vectorizer={type(vectorizer).__name__}")
        super().__init__(**kwargs)
        self.vectorizer = vectorizer
        self.model = model
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        # The vectorizer holds no shape-dependent state: built when ``model`` is.
        self.built = bool(getattr(model, "built", False))

    def build(self, input_shape: Any = None) -> None:
        pass  # the vectorizer has no shape-dependent state; ``model`` builds on its input

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*_callable_args(args), **kwargs)

    def call(self, texts: Any) -> Any:
        """``model(vectorizer(texts))``."""
        return self.model(self.vectorizer(texts))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "vectorizer": keras.saving.serialize_keras_object(self.vectorizer),
                "model": keras.saving.serialize_keras_object(self.model)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextModel:
        config = dict(config)
        for key in ("vectorizer", "model"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
