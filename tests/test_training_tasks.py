"""The task table and the one recipe system: every kind of model is one task; KG recipes run
through the same run folder, resume, CSV log, learning curve and results.json as the others."""

import csv
import json
import warnings

import pytest

from hadamard_zoo import models, training
from hadamard_zoo.training import recipes, tasks


def test_every_registered_model_kind_has_exactly_one_task_with_a_trainer():
    kinds = {models.get_config(name).kind for name in models.list_models()}
    served = {task.model_kind: task for task in tasks.TASKS.values()}
    assert kinds <= set(served), kinds - set(served)
    for task in tasks.TASKS.values():
        module = task.trainer()
        assert callable(module.train) and callable(module.evaluate), task.name
    assert tasks.task_for("rotate_countries").name == "kg"
    assert tasks.task_for("pinet_ccp").name == "classifier"
    assert tasks.task_for("cope_generator_fmnist").name == "gan"
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        tasks.task_named("nope")


def test_recipe_features_are_refused_by_tasks_without_them_before_any_data_is_read(tmp_path):
    for kwargs, message in (({"swa_epochs": 1, "epochs": 2}, "swa_epochs .* image classifiers, not for"),
                            ({"dtype_policy": "mixed_bfloat16"}, "image classifiers and language models, not for"),
                            ({"init_weights": "x.weights.h5"}, "init_weights is supported for image classifiers")):
        with pytest.raises(ValueError, match=message):
            training.train("rotate_small", dataset="nations", output_dir=tmp_path / "never", **kwargs)
    with pytest.raises(ValueError, match="augment do\\(es\\) not apply to knowledge-graph models"):
        training.train("rotate_small", dataset="nations", augment={"flip": True}, output_dir=tmp_path / "never")
    with pytest.raises(ValueError, match="optimizer: adam, schedule: constant"):
        training.train("rotate_small", dataset="nations", schedule="cosine", output_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_kg_steps_and_epochs_are_validated_like_every_recipe_key():
    with pytest.raises(recipes.RecipeError, match="steps must be a positive integer"):
        recipes.resolve_recipe("rotate_small", steps=0)
    with pytest.raises(recipes.RecipeError, match="shared_negatives must be true or false"):
        recipes.resolve_recipe("rotate_small", shared_negatives="yes")
    assert recipes.resolve_recipe("rotate_fb15k237_small").values["steps"] == 10000


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_kg_run_folder_resumes_to_the_uninterrupted_run(shared_datasets, tmp_path):
    """A KG run writes what every run writes; stopped after 2 of 4 epochs and resumed, it ends
    with the same losses, learning rates (the reference's drop at step 15 included) and metric."""
    common = dict(dataset="nations", data_dir=shared_datasets, steps_per_epoch=5, warm_up_steps=8, verbose=0)
    whole = training.train("rotate_small", steps=20, output_dir=tmp_path / "whole", **common)
    training.train("rotate_small", steps=10, output_dir=tmp_path / "parts", **common)
    parts = training.train("rotate_small", steps=20, output_dir=tmp_path / "parts", **common)
    for folder in ("whole", "parts"):
        run = tmp_path / folder
        for name in ("run.json", "history.csv", "results.json", "final.weights.h5", "learning_curve.png"):
            assert (run / name).is_file(), (folder, name)
    a, b = _rows(tmp_path / "whole" / "history.csv"), _rows(tmp_path / "parts" / "history.csv")
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b):
        assert float(ra["loss"]) == pytest.approx(float(rb["loss"]), rel=1e-5)
        assert float(ra["learning_rate"]) == pytest.approx(float(rb["learning_rate"]), rel=1e-6)
    rates = [float(r["learning_rate"]) for r in a]
    assert rates[0] == pytest.approx(0.01) and rates[-1] == pytest.approx(0.001)  # the drop at step 8
    assert parts["test_value"] == pytest.approx(whole["test_value"], rel=1e-5)
    assert json.loads((tmp_path / "whole" / "run.json").read_text())["task"] == "kg"
    assert whole["test_metric"] == "MRR" and whole["steps"] == 20 and whole["test_n"] == 201
    again = training.evaluate_checkpoint(tmp_path / "whole", data_dir=shared_datasets, verbose=False)
    assert again["metric"] == "MRR" and again["value"] == pytest.approx(whole["test_value"], rel=1e-4)


def test_kg_epochs_limit_and_recorded_command(shared_datasets, tmp_path):
    result = training.train("rotate_small", dataset="nations", epochs=2, limit=40, steps_per_epoch=3,
                            data_dir=shared_datasets, output_dir=tmp_path / "run", verbose=0)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["num_train"] == 40 and run["steps"] == 6 and result["steps"] == 6  # epochs x steps_per_epoch
    assert result["test_n"] == 40  # --limit caps the test queries too
    assert "--epochs 2" in run["train_command"] and "--steps" not in run["train_command"]
    assert "--limit 40" in run["train_command"] and "manifest_entry" not in result  # a limited run is not publishable


def test_moved_recipe_names_warn_and_still_work():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_dir_cls = recipes.RunDir
    from hadamard_zoo.training.run_dir import RunDir

    assert run_dir_cls is RunDir
    assert any("moved to hadamard_zoo.training.run_dir.RunDir" in str(w.message) for w in caught)
    with pytest.raises(AttributeError):
        recipes.no_such_name
