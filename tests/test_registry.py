import json
import textwrap

import keras
import numpy as np
import pytest
from helpers import rand, to_np

from hadamard_zoo import configs, models, pretrained


def test_list_and_create():
    names = models.list_models()
    assert "pinet_ccp" in names and "pinet_ncp" in names
    assert models.list_models("pinet_n*") == ["pinet_ncp", "pinet_ncp_h64"]
    assert models.list_models("pinet_ncp") == ["pinet_ncp"]
    model = models.create_model("pinet_ccp", num_classes=3)
    assert model.output_shape == (None, 3)
    assert models.pinet_ncp(classes=4).output_shape == (None, 4)
    assert models.pinet(variant="pinet_ncp").name == "pinet_ncp"


def test_model_info_fields():
    info = models.model_info("pinet_ccp")
    for key in ("family", "paper", "reference", "license", "published_params", "input_shape", "has_pretrained"):
        assert key in info
    assert info["published_params"] == models.create_model("pinet_ccp").count_params()


def test_unknown_names_are_helpful():
    with pytest.raises(ValueError, match="Did you mean"):
        models.create_model("pinet_cpp")
    with pytest.raises(AttributeError, match="list_models"):
        models.no_such_model  # noqa: B018
    with pytest.raises(ValueError, match="unknown key"):
        models.create_model("pinet_ccp", hidden_sise=3)
    with pytest.raises(ValueError, match="disagree"):
        models.create_model("pinet_ccp", classes=3, num_classes=4)


def _write(tmp_path, text):
    path = tmp_path / "fam.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_config_validation_names_the_bad_key(tmp_path):
    path = _write(tmp_path, """
        family: demo
        builder: hadamard_zoo.models.architectures.pinet_mlp:build_pinet_mlp
        variants:
          demo_a: {hidden_size: 4, degre: 2}
    """)
    with pytest.raises(configs.ConfigError, match=r"variant 'demo_a'.*\['degre'\]"):
        configs.load_family_file(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("family: x\nvariants: {a: {}}\n", "missing required key"),
        ("family: x\nbuilder: hadamard_zoo.models.architectures.pinet_mlp:nope\nvariants: {a: {}}\n", "no builder"),
        ("family: x\nbuilder: hadamard_zoo.models.architectures.pinet_mlp:build_pinet_mlp\nvariants: {}\n", "non-empty"),
        ("family: x\nbuilder: hadamard_zoo.models.architectures.pinet_mlp:build_pinet_mlp\ncolour: red\nvariants: {a: {}}\n", "unknown top-level"),
        ("family: x\nbuilder: hadamard_zoo.models.architectures.pinet_mlp:build_pinet_mlp\ndefault_variant: b\nvariants: {a: {}}\n", "default_variant"),
        ("family: [x\n", "not valid YAML"),
    ],
)
def test_config_errors(tmp_path, text, message):
    with pytest.raises(configs.ConfigError, match=message):
        configs.load_family_file(_write(tmp_path, text))


def test_every_shipped_config_loads():
    families = configs.load_all()
    assert "pinet" in families
    for fam in families.values():
        assert fam.default_variant in fam.variants


# ----------------------------------------------------------------- pretrained
def _make_checkpoint(tmp_path, monkeypatch, model_name="pinet_ccp", **build):
    monkeypatch.setenv("HADAMARD_ZOO_WEIGHTS", str(tmp_path))
    model = models.create_model(model_name, **build)
    path = tmp_path / f"{model_name}.test.weights.h5"
    model.save_weights(str(path))
    entry = {
        "name": f"{model_name}.test", "model": model_name, "default": True, "file": path.name,
        "sha256": pretrained.sha256_of(path), "dataset": "synthetic", "split": "test", "metric": "top1",
        "value": 0.0, "params": model.count_params(), "train_command": "-", "eval_command": "-",
        "backend": keras.config.backend(), "date": "2026-11-27",
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoints": [entry]}))
    return model, path


def test_pretrained_loads_and_matches(tmp_path, monkeypatch):
    model, _ = _make_checkpoint(tmp_path, monkeypatch)
    x = rand((2, 28, 28, 1), scale=50.0) + 100
    restored = models.create_model("pinet_ccp", pretrained=True)
    np.testing.assert_allclose(to_np(restored(x)), to_np(model(x)), rtol=1e-6, atol=1e-6)
    restored2 = models.create_model("pinet_ccp", weights="pinet_ccp.test")
    np.testing.assert_allclose(to_np(restored2(x)), to_np(model(x)), rtol=1e-6, atol=1e-6)
    assert models.model_info("pinet_ccp")["has_pretrained"]


def test_pretrained_refuses_tampered_file(tmp_path, monkeypatch):
    _, path = _make_checkpoint(tmp_path, monkeypatch)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(pretrained.CheckpointError, match="corrupt or was modified"):
        models.create_model("pinet_ccp", pretrained=True)


def test_pretrained_refuses_wrong_architecture(tmp_path, monkeypatch):
    _make_checkpoint(tmp_path, monkeypatch)
    with pytest.raises(pretrained.CheckpointError, match="is for model 'pinet_ccp'"):
        models.create_model("pinet_ncp", pretrained="pinet_ccp.test")
    with pytest.raises(pretrained.CheckpointError, match="parameters"):
        models.create_model("pinet_ccp", pretrained=True, hidden_size=32)  # not a head change: refused
    # a raw file for another architecture, passed by path
    with pytest.raises(pretrained.CheckpointError, match="does not fit"):
        models.create_model("pinet_ncp", pretrained=str(tmp_path / "pinet_ccp.test.weights.h5"))


def test_pretrained_missing_lists_what_exists(tmp_path, monkeypatch):
    _make_checkpoint(tmp_path, monkeypatch)
    with pytest.raises(pretrained.CheckpointError, match=r"No pretrained checkpoint exists for 'pinet_ncp'.*pinet_ccp.test"):
        models.create_model("pinet_ncp", pretrained=True)
    with pytest.raises(pretrained.CheckpointError, match="available"):
        models.create_model("pinet_ccp", pretrained="nonsense-tag")
