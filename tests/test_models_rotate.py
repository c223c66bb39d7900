"""RotatE model, self-adversarial loss, negative sampler, fit recipe and filtered evaluation."""

import math

import keras
import numpy as np
import pytest
from helpers import assert_close, to_np, value_and_grads

from hadamard_zoo import models
from hadamard_zoo.data.kg import KGDataset
from hadamard_zoo.models.architectures.rotate import HEAD_BATCH, TAIL_BATCH, RotatE, self_adversarial_loss
from hadamard_zoo.training import kg_eval
from hadamard_zoo.training.kg import NegativeSamplingDataset, ReferenceLRDrop, subsampling_weights, train_kg

ENTS = [f"e{i}" for i in range(8)]
RELS = ["next", "jump"]
TINY = np.array([(i, 0, (i + 1) % 8) for i in range(8)] + [(i, 1, (i + 3) % 8) for i in range(8)])


def tiny_kg():
    return KGDataset("tiny", ENTS, RELS, TINY, TINY[:2], TINY[2:4])


# ----------------------------------------------------------------- numpy transcription of the reference
def np_embeddings(model):
    ent = to_np(model.entity_embedding).astype(np.float64)
    k = ent.shape[1] // 2
    phase = to_np(model.relation_embedding).astype(np.float64) / (model.embedding_range / math.pi)
    return ent[:, :k] + 1j * ent[:, k:], np.exp(1j * phase)


def np_distance(model, h, r, t):
    e, rel = np_embeddings(model)
    return np.abs(e[h] * rel[r] - e[t]).sum(-1)


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_reference_loss(pos, neg, w, alpha, mask=None):
    """KGEModel.train_step with -adv, in numpy."""
    logits = alpha * neg if mask is None else np.where(mask > 0, alpha * neg, -np.inf)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    neg_term = (p * np_log_sigmoid(-neg)).sum(1)
    pos_term = np_log_sigmoid(pos)
    pos_loss = -(w * pos_term).sum() / w.sum()
    neg_loss = -(w * neg_term).sum() / w.sum()
    return (pos_loss + neg_loss) / 2


# ----------------------------------------------------------------- scores
def test_score_matches_hand_computation():
    model = RotatE(3, 1, hidden_dim=2, gamma=6.0)  # embedding range (6 + 2) / 2 = 4: phase = param * pi / 4
    # e0 = (1, i), e1 = (0, -1 + i), e2 = (0.5, 0); relation 0 = phases (0, pi/2) = rotation by (1, i)
    model.entity_embedding.assign(np.array([[1, 0, 0, 1], [0, -1, 0, 1], [0.5, 0, 0, 0]], "float32"))
    model.relation_embedding.assign(np.array([[0.0, 2.0]], "float32"))
    scores = to_np(model(np.array([[0, 0, 1], [1, 0, 0]])))
    # e0 o r = (1, -1); minus e1 = (1, -i): |1| + |-i| = 2
    # e1 o r = (0, -1 - i); minus e0 = (-1, -1 - 2i): 1 + sqrt(5)
    assert_close(scores, [6.0 - 2.0, 6.0 - 1.0 - math.sqrt(5.0)], 1e-6, 1e-6)
    # negatives: tail-batch (e0, r, e?) and head-batch (e?, r, e1) as the reference scores them
    batch = {
        "triples": np.array([[0, 0, 1], [0, 0, 1]]),
        "negatives": np.array([[1, 2], [0, 2]]),
        "mode": np.array([TAIL_BATCH, HEAD_BATCH]),
        "subsampling_weight": np.ones(2, "float32"),
    }
    out = model(batch)
    d_tail_e2 = abs(1 - 0.5) + abs(-1 - 0)  # e0 o r - e2
    d_head_e2 = abs(0 - 0.5) + abs(-1j * (-1 + 1j) - 0)  # conj(r) o e1 - e2 = (0, 1 + i) - (0.5, 0)
    assert_close(to_np(out["positive_score"]), [4.0, 4.0], 1e-6, 1e-6)
    assert_close(to_np(out["negative_score"]), [[4.0, 6 - d_tail_e2], [4.0, 6 - d_head_e2]], 1e-6, 1e-6)


# Shapes are shared between tests (8 entities, 2 relations, k = 8, batches of 8 x 4 negatives):
# under JAX every new shape costs eager-op compilations.
def test_shared_negatives_score_like_per_positive_ones():
    model = RotatE(8, 2, hidden_dim=8, gamma=3.0)
    rng = np.random.default_rng(0)
    triples = TINY[rng.permutation(16)[:8]]
    neg = rng.integers(0, 8, 4)
    base = {"triples": triples, "mode": np.array([0, 1] * 4), "subsampling_weight": np.ones(8, "float32")}
    shared = model({**base, "negatives": neg, "negative_mask": np.ones((8, 4), "float32")})
    tiled = model({**base, "negatives": np.tile(neg, (8, 1))})
    assert_close(to_np(shared["negative_score"]), to_np(tiled["negative_score"]), 1e-5, 1e-5)
    # and both equal the numpy distance |h' o r - t'| of the corrupted triples
    h = np.where(base["mode"][:, None] == HEAD_BATCH, neg[None, :], triples[:, :1])
    t = np.where(base["mode"][:, None] == TAIL_BATCH, neg[None, :], triples[:, 2:])
    expected = 3.0 - np_distance(model, h, triples[:, 1:2], t)
    assert_close(to_np(tiled["negative_score"]), expected, 1e-5, 1e-5)


# ----------------------------------------------------------------- loss
@pytest.mark.parametrize("shared", [False, True])
def test_loss_equals_numpy_reference(shared):
    model = RotatE(8, 2, hidden_dim=8, gamma=2.0, adversarial_temperature=0.5, regularization=1e-3)
    data = NegativeSamplingDataset(TINY, 8, 2, batch_size=8, num_negatives=4, shared_negatives=shared)
    x = data[1]
    loss = float(to_np(model.compute_loss(x, y_pred=model(x))))
    pos = 2.0 - np_distance(model, x["triples"][:, 0], x["triples"][:, 1], x["triples"][:, 2])
    neg_ids = x["negatives"] if not shared else np.tile(x["negatives"], (8, 1))
    is_head = x["mode"][:, None] == HEAD_BATCH
    h = np.where(is_head, neg_ids, x["triples"][:, :1])
    t = np.where(is_head, x["triples"][:, 2:], neg_ids)
    neg = 2.0 - np_distance(model, h, x["triples"][:, 1:2], t)
    expected = np_reference_loss(pos, neg, x["subsampling_weight"], 0.5, x.get("negative_mask"))
    reg = np.sum(np.abs(to_np(model.entity_embedding)) ** 3) + np.sum(np.abs(to_np(model.relation_embedding)) ** 3)
    assert_close(loss, expected + 1e-3 * reg, 1e-5, 1e-5)


def test_adversarial_weights_get_no_gradient():
    rng = np.random.default_rng(3)
    pos, neg = rng.normal(size=8).astype("float32"), rng.normal(size=(8, 4)).astype("float32")
    w = rng.uniform(0.2, 1.0, 8).astype("float32")
    alpha = 1.5
    value, (g_pos, g_neg) = value_and_grads(
        lambda p, n: self_adversarial_loss(p, n, w, alpha)[0] * keras.ops.ones((1,)), [pos, neg]
    )
    assert_close(value[0], np_reference_loss(pos, neg, w, alpha), 1e-5, 1e-5)
    # d/ds of -w p log sigma(-s) / sum(w) / 2 with p held constant: w p sigma(s) / (2 sum w)
    p = np.exp(alpha * neg) / np.exp(alpha * neg).sum(1, keepdims=True)
    sigma = 1 / (1 + np.exp(-neg))
    c = np.random.default_rng(123).normal(size=(1,))[0]  # value_and_grads' cotangent
    assert_close(g_neg, c * w[:, None] * p * sigma / (2 * w.sum()), 1e-5, 1e-5)
    assert_close(g_pos, c * -w * (1 / (1 + np.exp(pos))) / (2 * w.sum()), 1e-5, 1e-5)


# ----------------------------------------------------------------- sampler
def test_subsampling_weights_follow_reference_counts():
    w = subsampling_weights(np.array([[0, 0, 1], [0, 0, 2], [3, 0, 1]]))
    # count(h, r) and count(t, r^-1) start at 4: (0,0) seen twice -> 5, tail 1 twice -> 5, others 4
    assert_close(w, 1 / np.sqrt([5 + 5, 5 + 4, 4 + 5]), 1e-6, 1e-6)


def test_sampler_filters_alternates_and_is_deterministic():
    dense = np.array([(h, 0, t) for h in range(6) for t in range(6) if (h + t) % 2 == 0])  # half of all pairs true
    true = {tuple(x) for x in dense}
    data = NegativeSamplingDataset(dense, 6, 1, batch_size=4, num_negatives=5, seed=7)
    assert len(data) == math.ceil(len(dense) / 4)
    for step in range(4):
        x = data.batch(step)
        assert x["negatives"].shape == (4, 5)
        mode = TAIL_BATCH if step % 2 == 0 else HEAD_BATCH  # tail-batch first, as the reference
        assert (x["mode"] == mode).all()
        for (h, r, t), negs in zip(x["triples"], x["negatives"]):
            corrupted = [(n, r, t) if mode == HEAD_BATCH else (h, r, n) for n in negs]
            assert not any(c in true for c in corrupted)
    np.testing.assert_array_equal(data.batch(3)["negatives"], data.batch(3)["negatives"])
    # each mode's stream visits every training triple once per pass
    by3 = NegativeSamplingDataset(dense, 6, 1, batch_size=3, num_negatives=5, seed=7)  # 18 triples = 6 batches
    tail_rows = np.concatenate([by3.positive_indices(2 * j)[0] for j in range(6)])
    assert sorted(tail_rows) == list(range(len(dense)))
    # shared negatives: one (n,) draw, true pairs masked
    shared = NegativeSamplingDataset(dense, 6, 1, batch_size=4, num_negatives=5, shared_negatives=True)
    x = shared[0]
    assert x["negatives"].shape == (5,) and x["negative_mask"].shape == (4, 5)
    for (h, r, t), m in zip(x["triples"], x["negative_mask"]):
        assert list(m) == [0.0 if (h, r, n) in true else 1.0 for n in x["negatives"]]


# ----------------------------------------------------------------- fit, predict, save
@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    ds = tiny_kg()
    model = models.create_model("rotate_small", dataset=ds)
    probe = NegativeSamplingDataset(ds.train, 8, 2, batch_size=8, num_negatives=4, seed=99)[0]
    losses = [float(to_np(model.compute_loss(probe, y_pred=model(probe))))]

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                losses.append(float(to_np(model.compute_loss(probe, y_pred=model(probe)))))

    history = train_kg(model, ds, steps=40, learning_rate=0.1, warm_up_steps=20, steps_per_epoch=2,
                       verbose=0, callbacks=[Probe()])
    return ds, model, losses, history


def test_one_fit_epoch_lowers_the_loss(trained):
    _, _, losses, history = trained
    assert losses[1] < losses[0]
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_reference_lr_drop_starts_a_fresh_adam(trained):
    _, model, _, _ = trained
    assert math.isclose(float(to_np(model.optimizer.learning_rate)), 0.01, rel_tol=1e-5)
    assert int(to_np(model.optimizer.iterations)) == 20  # counter restarted at the drop (step 20 of 40)
    assert isinstance(ReferenceLRDrop(10), keras.callbacks.Callback)


def test_predict_tails_and_heads_after_overfitting(trained):
    _, model, _, _ = trained
    for h, r, t in TINY:
        assert model.predict_tails(ENTS[h], RELS[r], k=1)[0][0] == ENTS[t]
    top = model.predict_heads("jump", "e3", k=3)
    assert top[0][0] == "e0" and len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    by_id = model.predict_tails(0, 0, k=2, exclude=["e1"])
    assert "e1" not in [e for e, _ in by_id]
    with pytest.raises(ValueError, match="Did you mean"):
        model.predict_tails("e11", "next")
    with pytest.raises(ValueError, match="out of range"):
        model.predict_tails(8, 0)


def test_evaluate_ranking_matches_brute_force(trained):
    ds, model, _, _ = trained
    metrics = kg_eval.evaluate_ranking(model, ds, split="test", batch_size=1)
    known = {tuple(x) for x in ds.all_true_triples()}
    ranks = []
    for h, r, t in ds.test:
        for side in ("tail", "head"):
            cands = np.array([(h, r, e) if side == "tail" else (e, r, t) for e in range(8)])
            s = model.score_triples(cands)
            target = t if side == "tail" else h
            keep = [e for e in range(8) if e == target or tuple(cands[e]) not in known]
            ranks.append(1 + sum(s[e] > s[target] for e in keep) + 0.5 * sum(s[e] == s[target] and e != target for e in keep))
    assert metrics["num_queries"] == 4
    assert_close(metrics["MRR"], np.mean(1 / np.array(ranks)), 1e-6, 1e-6)
    assert metrics["HITS@1"] == 1.0


def test_keras_and_weights_round_trip(trained, tmp_path):
    _, model, _, _ = trained
    triples = TINY[:5]
    expected = to_np(model(triples))
    path = str(tmp_path / "rotate.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert_close(to_np(restored(triples)), expected, 1e-6, 1e-6)
    assert restored.entity_vocab == ENTS and restored.predict_tails("e0", "next", k=1)[0][0] == "e1"
    fresh = models.create_model("rotate_small", dataset=tiny_kg())
    fresh.save_weights(str(tmp_path / "w.weights.h5"))
    model.save_weights(str(tmp_path / "w.weights.h5"))
    fresh.load_weights(str(tmp_path / "w.weights.h5"))
    assert_close(to_np(fresh(triples)), expected, 1e-6, 1e-6)


# ----------------------------------------------------------------- metrics on hand-built cases
class FixedScores:
    """A stand-in model returning given score rows for (h, r) tail queries and (r, t) head queries."""

    def __init__(self, tails, heads, triples=None):
        self.tails, self.heads, self.triples = tails, heads, triples

    def score_all_tails(self, h, r):
        return np.array([self.tails[(int(a), int(b))] for a, b in zip(h, r)])

    def score_all_heads(self, r, t):
        return np.array([self.heads[(int(a), int(b))] for a, b in zip(r, t)])

    def score_triples(self, triples):
        return np.array([self.triples[tuple(int(v) for v in x)] for x in triples])


def test_manifest_entry_of_a_kg_run_is_publishable(trained, tmp_path):
    """kg.manifest_entry + results.json -> release.publish -> load_pretrained gives the same scores."""
    import json

    from hadamard_zoo import pretrained, release
    from hadamard_zoo.training.kg import manifest_entry

    ds, model, _, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    model.save_weights(run / "final.weights.h5")
    metrics = {"MRR": 0.51234, "MR": 2.0, "HITS@1": 0.4, "HITS@10": 1.0, "num_queries": 12}
    entry = manifest_entry("rotate_small", ds, metrics, model.count_params(), run / "final.weights.h5", "train it")
    assert entry["metric"] == "MRR" and entry["value"] == 0.5123 and entry["HITS@10"] == 1.0
    assert "num_queries" not in entry and entry["name"].startswith("rotate_small.")
    (run / "results.json").write_text(json.dumps({"final_weights": str(run / "final.weights.h5"), "manifest_entry": entry}))
    published = release.publish(run, directory=tmp_path / "weights", float16=False)
    assert published["train_command"] == f"KERAS_BACKEND={keras.config.backend()} train it"
    # a second tag after it, then republishing the first: the first keeps its place, the value is replaced
    (run / "results.json").write_text(json.dumps({"manifest_entry": dict(entry, name="rotate_small.other",
                                                                          file="other.weights.h5")}))
    release.publish(run, directory=tmp_path / "weights", float16=False)
    (run / "results.json").write_text(json.dumps({"manifest_entry": entry}))
    release.publish(run, directory=tmp_path / "weights", float16=False, value=0.5)
    listed = pretrained.load_manifest(tmp_path / "weights")
    assert [e["name"] for e in listed] == [entry["name"], "rotate_small.other"] and listed[0]["value"] == 0.5
    again = models.create_model("rotate_small", dataset=ds)
    pretrained.load_pretrained(again, "rotate_small", published["name"], directory=tmp_path / "weights")
    triples = np.asarray(ds.train[:4], "int32")
    np.testing.assert_allclose(to_np(again.score_all_tails(triples[:, 0], triples[:, 1])),
                               to_np(model.score_all_tails(triples[:, 0], triples[:, 1])), rtol=1e-6)


def test_filtered_ranking_on_known_ranks():
    ents = ["a", "b", "c", "d", "e"]
    ds = KGDataset("hand", ents, ["r"], np.array([[0, 0, 2], [4, 0, 3]]), np.zeros((0, 3), np.int64),
                   np.array([[0, 0, 1], [2, 0, 3]]))
    model = FixedScores(
        tails={(0, 0): [0.9, 0.5, 0.8, 0.1, 0.7], (2, 0): [0.1, 0.2, 0.3, 0.9, 0.4]},
        heads={(0, 1): [0.2, 0.3, 0.6, 0.9, 0.1], (0, 3): [0.5, 0.1, 0.4, 0.3, 0.6]},
    )
    # filtered ranks: tail (a,r,?) 3 (c is filtered), head (?,r,b) 4, tail (c,r,?) 1, head (?,r,d) 2 (e filtered)
    m = kg_eval.evaluate_ranking(model, ds, batch_size=1, per_side=True)
    assert_close(m["MRR"], (1 / 3 + 1 / 4 + 1 + 1 / 2) / 4, 1e-9, 1e-9)
    assert (m["MR"], m["HITS@1"], m["HITS@3"], m["HITS@10"]) == (2.5, 0.25, 0.75, 1.0)
    assert m["tail_MR"] == 2.0 and m["head_MR"] == 3.0
    raw = kg_eval.evaluate_ranking(model, ds, batch_size=2, filtered=False)
    assert raw["MR"] == (4 + 4 + 1 + 3) / 4
    # ties count one half; NaN ranks last
    ranks = kg_eval.ranks_from_scores(np.array([[1.0, 1.0, 1.0], [np.nan, 0.0, 1.0]]), np.array([0, 0]))
    np.testing.assert_array_equal(ranks, [2.0, 3.0])


def test_countries_auc_pr_as_average_precision():
    ds = KGDataset("countries_hand", ["x", "y", "eu", "as"], ["neighbor", "locatedin"],
                   np.array([[0, 0, 1]]), np.zeros((0, 3), np.int64), np.array([[0, 1, 2], [1, 1, 3]]),
                   regions=np.array([2, 3]))
    scores = {(0, 1, 2): 0.9, (0, 1, 3): 0.2, (1, 1, 2): 0.8, (1, 1, 3): 0.3}
    # ranked: 0.9 (true), 0.8 (false), 0.3 (true), 0.2 (false): AP = 0.5 * 1 + 0.5 * 2/3
    out = kg_eval.evaluate_countries(FixedScores({}, {}, scores), ds)
    assert_close(out["AUC-PR"], 0.5 + 1 / 3, 1e-9, 1e-9)
    assert kg_eval.average_precision([1, 0, 1, 0], [1, 1, 0.5, 0.5]) == 0.5  # one threshold per distinct score


# ----------------------------------------------------------------- registry and errors
def test_registry_variants_and_param_counts():
    assert {"rotate_wn18rr", "rotate_fb15k237", "rotate_countries", "rotate_small"} <= set(models.list_models("rotate*"))
    assert models.model_info("rotate_small")["published_params"] == 20 * 16 + 3 * 8
    info = models.model_info("rotate_countries")
    model = models.create_model("rotate_countries")
    assert info["published_params"] == model.count_params() == 544000
    assert model.gamma == 0.1 and model.hidden_dim == 1000
    from hadamard_zoo.training import resolve_recipe, task_for

    recipe = resolve_recipe("rotate_countries")  # KG recipes are recipes like every other task's
    assert task_for("rotate_countries").name == "kg"
    assert (recipe.num_negatives, recipe.steps, recipe.dataset, recipe.optimizer) == (64, 40000, "countries_S1", "adam")
    with pytest.raises(ValueError, match="reads no datasets"):
        models.create_model("rotate_small", dataset="nations")
    assert resolve_recipe("rotate_wn18rr").learning_rate == 5e-5 and "training" not in models.get_config("rotate_wn18rr").arguments
    for cpu_sized in ("rotate_wn18rr_small", "rotate_fb15k237_small"):  # the configs' stated counts are true
        assert models.create_model(cpu_sized).count_params() == models.model_info(cpu_sized)["published_params"]
    sized = models.create_model("rotate_small", dataset=tiny_kg())  # the dataset sets sizes and names
    assert (sized.num_entities, sized.num_relations, sized.relation_vocab) == (8, 2, RELS)
    assert sized.count_params() == 8 * 16 + 2 * 8


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="num_entities must be a positive integer"):
        RotatE(0, 1)
    with pytest.raises(ValueError, match="entity_vocab has 2 names"):
        RotatE(3, 1, hidden_dim=2, entity_vocab=["a", "b"])
    with pytest.raises(ValueError, match="no entity_vocab"):
        RotatE(3, 1, hidden_dim=2).predict_tails("a", 0)
    model = RotatE(3, 1, hidden_dim=2)
    with pytest.raises(ValueError, match="NegativeSamplingDataset"):
        model.compute_loss(np.zeros((1, 3)), y_pred=model(np.zeros((1, 3), "int32")))
    with pytest.raises(ValueError, match="out of range"):
        NegativeSamplingDataset(np.array([[0, 0, 5]]), 3, 1)


def test_train_command_runs_a_kg_variant_without_a_recipe_and_writes_a_publishable_run(shared_datasets, tmp_path):
    """training.train (hadamard-zoo train) hands a KG variant to the KG trainer with the dataset its
    zoo config names; the run folder holds the weights and a manifest entry."""
    import json

    from hadamard_zoo import training

    out = tmp_path / "kg_run"
    result = training.train("rotate_countries_quick", steps=2, output_dir=out, data_dir=shared_datasets)
    saved = json.loads((out / "results.json").read_text())
    assert saved["manifest_entry"]["metric"] == "AUC-PR" and saved["manifest_entry"]["model"] == "rotate_countries_quick"
    assert 0.0 <= result["test_AUC-PR"] <= 1.0 and (out / "final.weights.h5").exists()
    assert "--steps 2" in saved["manifest_entry"]["train_command"]
    with pytest.raises(ValueError, match="augment"):
        training.train("rotate_countries_quick", augment={"flip": True}, output_dir=out)
