"""The hadamard-zoo command: list / info / datasets, errors and exit codes, delegation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hadamard_zoo import cli

ROOT = Path(__file__).resolve().parent.parent


def test_list_prints_a_table(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:2] == ["name", "family"] and "pretrained" in header
    assert "pinet_ccp" in out and "50,410" in out
    assert cli.main(["list", "pinet_n*"]) == 0
    out = capsys.readouterr().out
    assert "pinet_ncp" in out and "pinet_ccp" not in out


def test_list_without_matches_is_an_error(capsys):
    assert cli.main(["list", "no_such_model*"]) == 2
    assert "no model matches" in capsys.readouterr().err


def test_info(capsys):
    assert cli.main(["info", "pinet_ccp"]) == 0
    out = capsys.readouterr().out
    assert "family" in out and "pinet" in out and "50,410" in out and "recipe" in out
    assert cli.main(["info", "pinet_ccp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["published_params"] == 50410


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "pinet_cpp"], "Did you mean"),
        (["train", "no_such_net", "--epochs", "1"], "Unknown model name"),
        (["train", "pinet_ccp", "--dataset", "imagenet", "--epochs", "1"], "Unknown dataset"),
        (["eval", "no_such_tag"], "neither a checkpoint tag"),
        (["train", "pinet_ccp", "--init-weights", "no_such.tag", "--epochs", "1"], "Unknown checkpoint 'no_such.tag'"),
        (["train", "monet_cifar", "--augment", "mixup", "--epochs", "1"], "is not key=value"),
        (["train", "monet_cifar", "--augment", "flip=maybe", "--epochs", "1"], "flip must be true or false"),
        (["train", "monet_cifar", "--augment", "mixup=-1", "--epochs", "1"], "augment.mixup is a Beta parameter"),
        (["train", "monet_cifar", "--set", "epochs=3"], "use --epochs instead"),
        (["train", "monet_cifar", "--set", "wieght_decay=0.1", "--epochs", "1"], "is not KEY=VALUE with a recipe key"),
        (["train", "monet_cifar", "--set", "weight_decay=-1", "--epochs", "1"], "weight_decay must be a number >= 0"),
        (["train", "monet_cifar", "--set", "optimizer=rmsprop", "--epochs", "1"], "optimizer must be one of"),
    ],
)
def test_bad_names_exit_2_without_traceback(capsys, argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # train would write runs/ here
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("hadamard-zoo: error:")


def test_train_augment_flag_changes_only_the_named_augmentations(monkeypatch):
    """``--augment k=v,...`` merges onto the recipe's augmentations, and the command recorded for the
    run (``command_line``) spells the change out again, so a manifest's train_command reproduces it."""
    from hadamard_zoo import training
    from hadamard_zoo.training import command_text
    from hadamard_zoo.training import recipes as R

    seen = {}
    monkeypatch.setattr(training, "train", lambda model, **kw: seen.update(kw, model=model) or {})
    argv = ["train", "monet_cifar", "--epochs", "12", "--lr", "0.0005", "--augment", "mixup=0.2,cutmix=1.0"]
    assert cli.main(argv) == 0
    assert seen["augment"] == {"crop_padding": 4, "flip": True, "mixup": 0.2, "cutmix": 1.0}
    recipe = R.resolve_recipe("monet_cifar", epochs=12, learning_rate=seen["learning_rate"], augment=seen["augment"])
    command = command_text.command_line("monet_cifar", recipe)
    assert command == "hadamard-zoo train monet_cifar --epochs 12 --lr 0.0005 --augment cutmix=1.0,mixup=0.2"
    assert command_text.parse_augment("flip=false, cutout=8") == {"flip": False, "cutout": 8}
    assert command_text.format_augment({"crop_padding": 4}, {"crop_padding": 4, "flip": True}) == "flip=false"
    assert command_text.format_augment({"crop_padding": 4, "flip": True}, {"crop_padding": 4, "flip": True}) == ""


def test_train_set_flag_overrides_recipe_values_and_is_recorded(monkeypatch):
    """``--set KEY=VALUE`` reaches ``training.train`` as a recipe override, and ``command_line``
    writes every such change back as ``--set`` so the recorded command reproduces the run."""
    import shlex

    from hadamard_zoo import training
    from hadamard_zoo.training import command_text
    from hadamard_zoo.training import recipes as R

    seen = {}
    monkeypatch.setattr(training, "train", lambda model, **kw: seen.update(kw, model=model) or {})
    argv = ["train", "monet_cifar", "--epochs", "2", "--set", "weight_decay=0.01", "--set", "optimizer=sgd",
            "--set", "label_smoothing=0", "--set", "clipnorm=1.5", "--set", "model_args={depth: 2}"]
    assert cli.main(argv) == 0
    overrides = {k: seen[k] for k in ("weight_decay", "optimizer", "label_smoothing", "clipnorm", "model_args")}
    assert overrides == {"weight_decay": 0.01, "optimizer": "sgd", "label_smoothing": 0,
                         "clipnorm": 1.5, "model_args": {"depth": 2}}
    recipe = R.resolve_recipe("monet_cifar", epochs=2, **overrides)
    command = command_text.command_line("monet_cifar", recipe)
    words = shlex.split(command)
    assert words[:5] == ["hadamard-zoo", "train", "monet_cifar", "--epochs", "2"]
    recorded = command_text.parse_set([w for i, w in enumerate(words) if i and words[i - 1] == "--set"])
    assert R.resolve_recipe("monet_cifar", epochs=2, **recorded).values == recipe.values
    # an unchanged value is not repeated; strings that read as numbers keep their type
    assert "weight_decay" not in command_text.command_line("monet_cifar", R.resolve_recipe("monet_cifar", weight_decay=0.05))
    assert command_text.parse_set([f"description={command_text.format_set_value('1e-3')}"]) == {"description": "1e-3"}


def test_missing_dataset_exits_1(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "pinet_ccp", "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"),
                     "--epochs", "1"])
    assert code == 1
    assert "cifar10-jpeg.zip" in capsys.readouterr().err


def test_datasets_lists_every_reader(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HADAMARD_ZOO_DATA", str(tmp_path))
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("cifar10", "fashion_mnist", "mnist_5k", "tiny_shakespeare"):
        assert name in out


def test_delegation_forwards_argv(tmp_path, monkeypatch):
    (tmp_path / "fake_zoo_tool.py").write_text("def main(argv):\n    print('got', argv)\n    return len(argv)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.delegate("fake_zoo_tool", ["ops", "--quick"]) == 2
    with pytest.raises(cli.CLIError, match="not part of this installation"):
        cli.delegate("hadamard_zoo.no_such_module", [])


@pytest.mark.backends("jax", reason="the entry point does not depend on the backend")
def test_python_dash_m_entry_point():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "hadamard_zoo", "info", "pinet_cpp"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Did you mean" in proc.stderr and "Traceback" not in proc.stderr
