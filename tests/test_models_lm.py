"""GCNN and linear-attention language models: variants, causality, training, saving, generation."""

import keras
import numpy as np
import pytest
from helpers import assert_close, to_np

from hadamard_zoo import models
from hadamard_zoo.models._generation import CausalLM, generate
from hadamard_zoo.models.architectures.gcnn_lm import build_gcnn_lm, gcnn_body_parameters, parse_layer_spec, receptive_field
from hadamard_zoo.models.architectures.linear_attention_lm import build_linear_attention_lm
from hadamard_zoo.text import CharTokenizer

GCNN_14_LAYERS = (
    "[(850, 6)] * 3 + [(850, 1)] * 1 + [(850, 5)] * 4 + [(850, 1)] * 1 + [(850, 4)] * 3 "
    "+ [(1024, 4)] * 1 + [(2048, 4)] * 1"
)


def _ids(shape, vocab, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, shape).astype("int32")


def _tiny_gcnn(**kw):
    args = dict(vocab_size=11, context_length=12, embedding_dim=8, layers="[(16, 3)] * 2 + [(4, 1, 0), (4, 3, 0), (16, 1, 3)]")
    args.update(kw)
    return build_gcnn_lm(**args)


def _tiny_linear(**kw):
    args = dict(vocab_size=11, context_length=12, hidden_dim=8, num_layers=2, num_heads=2, ffn_hidden_dim=12, chunk_size=4)
    args.update(kw)
    return build_linear_attention_lm(**args)


def _train_step(model, batch, length, vocab, optimizer="adam"):
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _ids((batch, length), vocab, 1), _ids((batch, length), vocab, 2)
    assert model.output_shape == (None, None, vocab)
    loss = float(model.train_on_batch(x, y))
    assert np.isfinite(loss)
    return loss


# ------------------------------------------------------------------ registry
def test_variants_registered():
    assert models.list_models(family="gcnn_lm") == ["gcnn_14", "gcnn_char_small"]
    assert models.list_models(family="linear_attention_lm") == ["linear_attention_lm_char", "linear_attention_lm_s21"]
    assert models.get_config("gcnn_lm").name == "gcnn_char_small"
    assert models.get_config("linear_attention_lm").name == "linear_attention_lm_char"


SMALL = {  # the variant's structure at test size
    "gcnn_char_small": dict(embedding_dim=16, layers="[(32, 5)] * 3"),
    "gcnn_14": dict(
        vocab_size=600,
        adaptive_cutoffs=[100, 300],
        embedding_dim=28,
        layers=GCNN_14_LAYERS.replace("850", "17").replace("1024", "20").replace("2048", "40"),
    ),
    "linear_attention_lm_char": dict(hidden_dim=16, num_layers=2, ffn_hidden_dim=24, chunk_size=8),
    "linear_attention_lm_s21": dict(hidden_dim=16, chunk_size=8),
}


@pytest.mark.parametrize("name", sorted(set(SMALL) - {"gcnn_14"}))  # gcnn_14: below
def test_variant_forward_and_train_step(name):
    model = models.create_model(name, **SMALL[name])
    assert isinstance(model, CausalLM) and model.name == name
    vocab = SMALL[name].get("vocab_size", 65)
    _train_step(model, 2, 16, vocab, optimizer="sgd")


@pytest.mark.parametrize("name", ["gcnn_char_small", "linear_attention_lm_char", "linear_attention_lm_s21"])
def test_variant_full_size_builds(name):
    model = models.create_model(name)
    assert model.context_length == 256 and model.output_shape == (None, None, 65)
    assert model.count_params() < 10_000_000  # CPU-sized


def test_gcnn_14_parameters_and_train_step():
    """GCNN-14 (fairseq fconv_lm_dauphin_wikitext103): 14 layers, fairseq's parameter arithmetic.

    The full body (102M parameters) is not built here; the count is checked on the
    same structure at 1/50 width, then the arithmetic at full width.
    """
    assert len(parse_layer_spec(GCNN_14_LAYERS)) == 14 and receptive_field(GCNN_14_LAYERS) == 47
    assert gcnn_body_parameters(280, GCNN_14_LAYERS) == 102_116_434  # fc1, 14 GLU convs, 2 skip projections
    small = SMALL["gcnn_14"]
    model = models.create_model("gcnn_14", **small)
    assert model.get_layer("adaptive_softmax").cutoffs == [100, 300]
    spec = parse_layer_spec(small["layers"])
    weight_norm_gains = sum(2 * f for f, _, _ in spec)
    adaptive = 40 * (100 + 2) + 40 * 10 + 10 * 200 + 40 * 2 + 2 * 300  # head; tails d//4, d//16
    expected = 600 * 28 + gcnn_body_parameters(28, spec) + weight_norm_gains + adaptive
    assert model.count_params() == expected
    _train_step(model, 2, 16, 600, optimizer="sgd")


def test_s21_matches_appendix_parameter_count():
    info = models.model_info("linear_attention_lm_s21")
    assert info["published_params"] == models.create_model("linear_attention_lm_s21").count_params()


# ------------------------------------------------------------------ causality
@pytest.mark.parametrize("builder", [_tiny_gcnn, _tiny_linear])
def test_future_tokens_never_change_past_outputs(builder):
    model = builder()
    x = _ids((2, 12), 11, 3)
    base = to_np(model(x))
    for t in (0, 5, 11):
        y = x.copy()
        y[:, t] = (y[:, t] + 1) % 11
        changed = to_np(model(y))
        assert_close(changed[:, :t], base[:, :t], 1e-6, 1e-6, f"outputs before t={t}")
        assert not np.allclose(changed[:, t], base[:, t])


# --------------------------------------------------- PyTorch appendix S.2.1 model
def test_s21_matches_pytorch_module():
    """The s21 variant vs a PyTorch LM written from the appendix description, same weights."""
    torch = pytest.importorskip("torch")

    class TorchLinearAttentionLM(torch.nn.Module):
        def __init__(self, vocab, d):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, d)
            self.q, self.k, self.v = (torch.nn.Linear(d, d) for _ in range(3))
            self.out = torch.nn.Linear(d, vocab)

        def forward(self, ids):
            z = self.embedding(ids)
            scores = self.q(z) @ self.k(z).transpose(1, 2)
            mask = torch.tril(torch.ones(ids.shape[1], ids.shape[1]))
            return self.out((scores * mask) @ self.v(z))  # Hadamard causal mask

    vocab, d = 13, 6
    model = build_linear_attention_lm(
        vocab_size=vocab, context_length=20, hidden_dim=d, num_layers=1, num_heads=1, architecture="s21",
        feature_map=None, normalize=False, positional_embedding=None, chunk_size=4,
    )
    ref = TorchLinearAttentionLM(vocab, d)
    attention = model.get_layer("linear_self_attn")
    with torch.no_grad():
        ref.embedding.weight.copy_(torch.from_numpy(to_np(model.get_layer("embedding").embeddings)))
        for lin, dense in ((ref.q, attention.query_dense), (ref.k, attention.key_dense), (ref.v, attention.value_dense),
                           (ref.out, model.get_layer("fc_out"))):
            lin.weight.copy_(torch.from_numpy(to_np(dense.kernel).T))
            lin.bias.copy_(torch.from_numpy(to_np(dense.bias)))
        ids = _ids((3, 10), vocab, 4)
        expected = ref(torch.from_numpy(ids).long()).numpy()
    assert_close(to_np(model(ids)), expected, 1e-5, 1e-5, "S.2.1 LM vs PyTorch")


# ------------------------------------------------------------ saving, tokenizer
@pytest.mark.parametrize("builder", [_tiny_gcnn, _tiny_linear])
def test_keras_roundtrip_keeps_context_and_tokenizer(builder, tmp_path):
    tok = CharTokenizer("abcdefghij\n")
    model = builder(tokenizer=tok)
    path = str(tmp_path / "lm.keras")
    x = _ids((2, 9), 11, 5)
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, CausalLM)
    assert restored.context_length == 12 and restored.tokenizer == tok
    assert_close(to_np(restored(x)), to_np(model(x)), 1e-6, 1e-6)
    assert restored.generate("abc", 5, seed=3) == model.generate("abc", 5, seed=3)


def test_adaptive_head_model_roundtrip(tmp_path):
    model = _tiny_gcnn(vocab_size=40, layers="[(16, 3), (32, 2)]", head="adaptive", adaptive_cutoffs=[10, 20])
    x = _ids((1, 6), 40, 6)
    assert_close(np.exp(to_np(model(x)).astype(np.float64)).sum(-1), np.ones((1, 6)), 1e-5, 1e-5)
    model.save(str(tmp_path / "a.keras"))
    assert_close(to_np(keras.saving.load_model(str(tmp_path / "a.keras"))(x)), to_np(model(x)), 1e-6, 1e-6)


# ------------------------------------------------------------------ generation
def test_generate_deterministic_with_seed_and_sliding_window():
    model = _tiny_gcnn()
    prompt = _ids((5,), 11, 7)
    a = model.generate(prompt, 20, temperature=1.0, seed=42)  # 25 tokens > context 12: the window slides
    b = generate(model, prompt, 20, temperature=1.0, seed=42)
    assert a.shape == (25,) and a.dtype == np.int32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:5], prompt)
    assert a.min() >= 0 and a.max() < 11
    c = model.generate(prompt, 20, temperature=1.0, seed=43)
    assert not np.array_equal(a, c)


def test_gcnn_generates_from_its_receptive_field_only():
    model = _tiny_gcnn()
    assert model.receptive_field == 7 < model.context_length  # 1 + 2 + 2 + (0 + 2 + 0)
    prompt = _ids((2, 9), 11, 9)
    short = model.generate(prompt, 6, temperature=0.7, seed=5)
    model.receptive_field = None  # feed the whole context instead: same tokens
    np.testing.assert_array_equal(model.generate(prompt, 6, temperature=0.7, seed=5), short)


def test_generate_greedy_and_batched():
    model = _tiny_linear()
    prompts = _ids((2, 4), 11, 8)
    out = model.generate(prompts, 3, temperature=0)
    assert out.shape == (2, 7)
    first = np.argmax(to_np(model(prompts))[:, -1], axis=-1)
    np.testing.assert_array_equal(out[:, 4], first)
    np.testing.assert_array_equal(model.generate(prompts[:1], 3, temperature=0)[0], out[0])
    top1 = model.generate(prompts, 3, temperature=1.0, top_k=1, seed=0)
    np.testing.assert_array_equal(top1, out)


def test_generate_string_prompt_and_errors():
    tok = CharTokenizer("abcdefghij ")
    model = _tiny_gcnn()
    with pytest.raises(ValueError, match="no tokenizer"):
        model.generate("abc", 3)
    model.tokenizer = tok
    text = model.generate("abc", 4, temperature=0.8, seed=1)
    assert isinstance(text, str) and len(text) == 7 and text.startswith("abc")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        model.generate("xyz", 3)
    with pytest.raises(ValueError, match="num_tokens"):
        model.generate([1, 2], -1)
    with pytest.raises(ValueError, match="temperature"):
        model.generate([1, 2], 2, temperature=-1.0)
    with pytest.raises(ValueError, match="prompt_ids"):
        model.generate(np.zeros((1, 1, 1), "int32"), 2)
    with pytest.raises(ValueError, match="prompt_ids"):
        model.generate(np.zeros((0,), "int32"), 2)


# ------------------------------------------------------------------ bad inputs
def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="head must be one of"):
        _tiny_gcnn(head="hierarchical")
    with pytest.raises(ValueError, match="needs adaptive_cutoffs"):
        _tiny_gcnn(head="adaptive")
    with pytest.raises(ValueError, match="kernel_size must be an integer >= 1"):
        _tiny_gcnn(layers=[[16, 0]])
    with pytest.raises(ValueError, match="cannot parse"):
        _tiny_gcnn(layers="[(16, 3)] ** 2")
    with pytest.raises(ValueError, match="residual distance 3"):
        _tiny_gcnn(layers=[[16, 3], [16, 3, 3]])
    with pytest.raises(ValueError, match="architecture"):
        _tiny_linear(architecture="transformer")
    with pytest.raises(ValueError, match="one single-head attention layer"):
        _tiny_linear(architecture="s21", num_layers=2)
    with pytest.raises(ValueError, match="positional_embedding"):
        _tiny_linear(positional_embedding="rotary")
