"""Train and evaluate the class-conditional CoPE generators (task ``"gan"``).

    hadamard-zoo train cope_generator_fmnist         # recipe: zoo_configs/recipes/generators.yaml
    hadamard-zoo eval cope_generator_fmnist.fashion_mnist

Training is :class:`hadamard_zoo.training.gan.ConditionalGAN` (hinge loss, the
SNGAN / CoPE updater) against the recipe's ``discriminator`` variant; an "epoch"
is ``steps_per_epoch`` generator iterations, after which both networks' weights
are saved (``epoch_NNN.gen.weights.h5`` / ``.dis.weights.h5``) and a sample grid
is drawn.  ``resume`` restarts from the last saved epoch with fresh optimizer
moments (Adam's state is not saved; the loss of a few hundred iterations of
warm-up is the price).

With ``g_ema_momentum`` in the recipe the generator's moving average
(:meth:`ConditionalGAN.ema_generator`, BatchNorm statistics recomputed) is what
is sampled, saved per epoch (``epoch_NNN.gen_ema.weights.h5``, restored on
resume), evaluated and shipped as ``final.weights.h5``; the live generator is
evaluated too (``live_generator`` in ``results.json``), so the average's effect
is measured in every run.

Evaluation (:func:`evaluate_generator`), as the checkpoints issue asks, in the
feature space of the zoo's own pretrained classifier for the dataset
(``eval_classifier``, a manifest tag):

* ``class_accuracy``: the classifier's top-1 agreement with the requested label
  over ``n_per_class`` samples of every class (the classifier's own accuracy on
  real test images is reported beside it, as the ceiling);
* ``frechet_distance``: ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``
  between the classifier's penultimate features of the real test split and of
  as many generated images (class-balanced), FID's formula in another network's
  feature space, so not comparable with Inception FIDs; the distance between the
  real train and test splits is reported as the floor.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from hadamard_zoo.training.command_text import command_line
from hadamard_zoo.training.manifest_entry import manifest_entry, now
from hadamard_zoo.training.recipes import RecipeError
from hadamard_zoo.training.run_dir import RunDir
from hadamard_zoo.training.splits import subset_indices


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two ``(N, D)`` feature sets.

    ``|mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2))``;
    the last trace uses the symmetric form (eigenvalues clipped at 0), which
    equals ``Tr((S_a S_b)^(1/2))`` without a non-symmetric matrix square root.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_distance needs two (N >= 2, D) arrays of the same D, got {a.shape} and {b.shape}.")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False).reshape(a.shape[1], -1), np.cov(b, rowvar=False).reshape(b.shape[1], -1)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(np.clip(cross, 0, None)).sum())
    return max(value, 0.0)


def _classifier(tag):
    from hadamard_zoo import models, pretrained

    entry = next((e for e in pretrained.load_manifest() if e["name"] == tag), None)
    if entry is None:
        raise pretrained.CheckpointError(f"eval_classifier {tag!r} is not in weights/manifest.json.")
    clf = models.create_model(entry["model"], pretrained=tag, **(entry.get("model_args") or {}))
    features = keras.Model(clf.inputs, clf.layers[-2].output, name=f"{clf.name}_features")
    return clf, features, entry


def _to_pixels(images):
    """Generator output in [-1, 1] -> float32 pixels in [0, 255] (what the zoo's classifiers take)."""
    return np.clip((np.asarray(images, np.float32) + 1.0) * 127.5, 0.0, 255.0)


def _data(dataset, data_dir=None):
    """``dataset``: a name, or arrays ``((x_train, y_train), (x_test, y_test))`` (uint8 pixels)."""
    from hadamard_zoo.data import images
    from hadamard_zoo.data import dataset_info

    if not isinstance(dataset, str):
        (x_train, y_train), (x_test, y_test) = images.from_arrays(dataset)
        n = int(max(np.max(y_train), np.max(y_test))) + 1
        return {"name": "arrays", "display": "arrays", "train": (x_train, y_train), "test": (x_test, y_test),
                "class_names": [str(i) for i in range(n)]}
    info = dataset_info(dataset)
    names = {"cifar10": images.CIFAR10_CLASSES, "fashion_mnist": images.FASHION_MNIST_CLASSES,
             "mnist_5k": images.MNIST_CLASSES}
    if info.kind != "image" or info.name not in names:
        raise ValueError(f"CoPE generators train on labelled image datasets ({sorted(names)}), not {dataset!r}.")
    (x_train, y_train), (x_test, y_test) = (info.load(data_dir=data_dir, split=s) for s in ("train", "test"))
    return {"name": info.name, "display": info.display, "train": (x_train, y_train), "test": (x_test, y_test),
            "class_names": list(names[info.name])}


def evaluate_generator(generator, dataset="fashion_mnist", eval_classifier=None, n_per_class=1000, seed=0,
                       data_dir=None, data=None):
    """Class accuracy and Fréchet distance of ``generator``'s samples (see the module docstring)."""
    from hadamard_zoo.models.architectures.cope import generate

    data = data or _data(dataset, data_dir)
    clf, features, entry = _classifier(eval_classifier)
    num_classes = clf.output_shape[-1]
    labels = np.repeat(np.arange(num_classes), n_per_class)
    fake = _to_pixels(generate(generator, labels, seed=seed))
    x_test, y_test = data["test"]
    x_train = data["train"][0]
    real_test = np.asarray(x_test, np.float32)
    pred_fake = clf.predict(fake, batch_size=500, verbose=0).argmax(-1)
    pred_real = clf.predict(real_test, batch_size=500, verbose=0).argmax(-1)
    f_fake = features.predict(fake, batch_size=500, verbose=0)
    f_test = features.predict(real_test, batch_size=500, verbose=0)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_train), size=min(len(x_train), len(real_test)), replace=False)
    f_train = features.predict(np.asarray(x_train[pick], np.float32), batch_size=500, verbose=0)
    per_class = [float((pred_fake[labels == c] == c).mean()) for c in range(num_classes)]
    return {
        "metric": "class_accuracy", "value": float((pred_fake == labels).mean()),
        "class_accuracy_per_class": per_class,
        "classifier": eval_classifier, "classifier_test_accuracy": float((pred_real == np.asarray(y_test)).mean()),
        "frechet_distance": frechet_distance(f_test, f_fake),
        "frechet_distance_train_vs_test": frechet_distance(f_test, f_train),
        "feature_dim": int(f_fake.shape[-1]), "n_generated": int(len(labels)), "n_real": int(len(real_test)),
        "seed": seed, "dataset": data["display"], "split": "test",
    }


def sample_grid(generator, path, class_names, per_class=10, seed=0, title=None):
    """Save a labelled grid (one row per class) of generated samples as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hadamard_zoo.models.architectures.cope import generate

    n = len(class_names)
    imgs = generate(generator, np.repeat(np.arange(n), per_class), seed=seed, as_uint8=True)
    fig, axes = plt.subplots(n, per_class, figsize=(per_class * 0.8 + 1.2, n * 0.8 + 0.4))
    for c in range(n):
        for j in range(per_class):
            ax = axes[c, j]
            img = imgs[c * per_class + j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[c, 0].set_ylabel(class_names[c], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)


def train(model_name, recipe, dataset=None, output_dir=None, resume=True, limit=None, verbose="auto",
          data_dir=None, command=None, **_):
    """Train a CoPE generator by its recipe; returns the ``results.json`` dict."""
    from hadamard_zoo import models
    from hadamard_zoo.training import gan as G

    if recipe.discriminator is None:
        raise ValueError(f"recipe of {model_name!r} must name its discriminator variant (discriminator: ...).")
    dataset = recipe.dataset if dataset is None else dataset
    data = _data(dataset, data_dir)
    dataset = data["name"]
    x, y = data["train"]
    if limit:
        idx = subset_indices(len(x), limit, recipe.seed)
        x, y = x[idx], y[idx]
    images = (np.asarray(x, np.float32) / 127.5 - 1.0).astype("float32")
    labels = np.asarray(y, np.int32)

    run = RunDir(output_dir or f"runs/{model_name}")
    run.create()
    keras.utils.set_random_seed(recipe.seed)
    gen = models.create_model(model_name, **recipe.model_args)
    dis = models.create_model(recipe.discriminator)
    gan = G.ConditionalGAN(gen, dis, num_classes=int(labels.max()) + 1, g_batch_size=recipe.g_batch_size, seed=recipe.seed,
                           g_ema_momentum=recipe.g_ema_momentum)
    gan.compile(G.sngan_adam(recipe.learning_rate, recipe.beta_1, recipe.beta_2),
                G.sngan_adam(recipe.learning_rate, recipe.beta_1, recipe.beta_2))
    steps, epochs = int(recipe.steps_per_epoch), int(recipe.epochs)
    schedule = tuple(tuple(p) for p in recipe.n_dis_schedule) if recipe.n_dis_schedule else ((10**9, 1),)
    # what a resumed run must share with the saved one (the length and the scoring classifier may change)
    same_run = {k: v for k, v in recipe.to_dict().items() if k not in ("epochs", "description", "eval_classifier")}
    identity = {"model": model_name, "task": "gan", "dataset": dataset, "recipe": same_run,
                "model_args": recipe.model_args, "limit": limit, "params": gen.count_params()}
    start_epoch = 0
    state = run.path / "gan_state.json"
    if resume and state.is_file():
        saved = json.loads(state.read_text())
        if saved.get("identity") != json.loads(json.dumps(identity, default=str)):
            raise RecipeError(
                f"{run.path} holds a GAN run with other settings ({saved.get('identity')}); pass another "
                f"output_dir (--output-dir) or resume=False (--no-resume) to start over there."
            )
        if saved["epoch"]:
            start_epoch = saved["epoch"]
            gen.load_weights(run.path / f"epoch_{start_epoch:03d}.gen.weights.h5")
            dis.load_weights(run.path / f"epoch_{start_epoch:03d}.dis.weights.h5")
            if gan.g_ema_variables:
                gan.load_ema(run.path / f"epoch_{start_epoch:03d}.gen_ema.weights.h5")
            print(f"resuming {model_name} after epoch {start_epoch}", flush=True)
    command = command or command_line(
        model_name, recipe, dataset=dataset if dataset != "arrays" else None, limit=limit,
        output_dir=str(run.path) if output_dir is not None else None,
    )
    run.write_json(run.path / "run.json", {**identity, "command": command, "started": now(),
                                            "backend": keras.config.backend()})
    log = run.path / "log.csv"
    if start_epoch == 0:
        log.write_text("epoch,iteration,d_loss,g_loss,d_real,d_fake,seconds\n")
    t_all = time.time()
    for epoch in range(start_epoch, epochs):
        t0 = time.time()
        first = epoch * steps
        histories = G.fit_with_schedule(
            gan, images, labels, steps, batch_size=recipe.batch_size,
            n_dis_schedule=tuple((max(u - first, 0), n) for u, n in schedule if u > first) or ((10**9, schedule[-1][1]),),
            seed=recipe.seed + 1000 * epoch, verbose=0,
        )
        h = {k: float(v[-1]) for k, v in histories[-1].history.items()}
        secs = time.time() - t0
        with log.open("a") as f:
            f.write(f"{epoch + 1},{(epoch + 1) * steps},{h.get('d_loss', math.nan):.4f},{h.get('g_loss', math.nan):.4f},"
                    f"{h.get('d_real', math.nan):.4f},{h.get('d_fake', math.nan):.4f},{secs:.1f}\n")
        print(f"epoch {epoch + 1}/{epochs}: iteration {(epoch + 1) * steps}, d_loss {h.get('d_loss', 0):.3f}, "
              f"g_loss {h.get('g_loss', 0):.3f} ({secs:.0f} s)", flush=True)
        gen.save_weights(run.path / f"epoch_{epoch + 1:03d}.gen.weights.h5")
        dis.save_weights(run.path / f"epoch_{epoch + 1:03d}.dis.weights.h5")
        shipped = gen
        if gan.g_ema_variables:
            shipped = gan.ema_generator(seed=recipe.seed)
            shipped.save_weights(run.path / f"epoch_{epoch + 1:03d}.gen_ema.weights.h5")
        state.write_text(json.dumps({"identity": json.loads(json.dumps(identity, default=str)), "epoch": epoch + 1}))
        old = epoch + 1 - max(int(recipe.keep_checkpoints), 1)
        for suffix in ("gen", "dis", "gen_ema"):
            p = run.path / f"epoch_{old:03d}.{suffix}.weights.h5"
            if old >= 1 and p.exists():
                p.unlink()
        sample_grid(shipped, run.path / "samples.png", data["class_names"], title=f"{model_name}, iteration {(epoch + 1) * steps}")

    if start_epoch >= epochs:  # nothing left to train: the saved epoch is what ships
        shipped = gen
        if gan.g_ema_variables:
            gan.load_ema(run.path / f"epoch_{epochs:03d}.gen_ema.weights.h5")
            shipped = gan.ema_generator(seed=recipe.seed)
    shipped.save_weights(run.final)
    metrics = evaluate_generator(shipped, dataset, recipe.eval_classifier, data=data)
    results = {"model": model_name, "task": "gan", "params": gen.count_params(), **metrics,
               "train_seconds": round(time.time() - t_all, 1), "iterations": epochs * steps,
               "final_weights": str(run.final)}
    if gan.g_ema_variables:
        live = evaluate_generator(gen, dataset, recipe.eval_classifier, data=data)
        results["shipped"] = f"moving average of the generator (momentum {recipe.g_ema_momentum})"
        results["live_generator"] = {k: live[k] for k in ("value", "frechet_distance", "class_accuracy_per_class")}
    print(f"{model_name}: classifier agreement {metrics['value']:.4f} (classifier on real test images: "
          f"{metrics['classifier_test_accuracy']:.4f}); Frechet distance {metrics['frechet_distance']:.3f} "
          f"(train vs test: {metrics['frechet_distance_train_vs_test']:.3f}) in {metrics['feature_dim']}-d "
          f"{metrics['classifier']} features.", flush=True)
    if "live_generator" in results:
        print(f"  (that is the moving average; the live generator: agreement {results['live_generator']['value']:.4f}, "
              f"Frechet distance {results['live_generator']['frechet_distance']:.3f})", flush=True)
    if limit is None and dataset != "arrays":
        results["manifest_entry"] = manifest_entry(
            model_name, dataset, run.final, dataset=data["display"], split="test", metric="class_accuracy",
            value=metrics["value"], params=results["params"], train_command=command,
            frechet_distance=round(metrics["frechet_distance"], 4), eval_classifier=recipe.eval_classifier,
            model_args=recipe.model_args,
        )
        if "live_generator" in results:
            results["manifest_entry"].update(
                generator_weights=results["shipped"], live_generator_value=round(results["live_generator"]["value"], 4))
    run.write_json(run.results_json, results)
    return results


def evaluate(checkpoint, dataset=None, limit=None, batch_size=None, data_dir=None, cache_dir=None):
    """Classifier agreement and Frechet distance (:func:`evaluate_generator`) of a generator
    ``checkpoint`` (a :class:`hadamard_zoo.training.evaluate.Checkpoint`), scored by the entry's,
    run's or recipe's ``eval_classifier``, on a fixed ``n_per_class`` samples of every class
    (so ``limit`` is refused rather than ignored)."""
    from hadamard_zoo.training.recipes import resolve_recipe

    if limit is not None:
        raise ValueError("limit does not apply to generators: they are scored on a fixed 1000 samples of every "
                         "class; evaluate without --limit.")

    name = checkpoint.model_name
    classifier = (checkpoint.entry or {}).get("eval_classifier") or \
        ((checkpoint.run or {}).get("recipe") or {}).get("eval_classifier")
    if classifier is None and name:
        classifier = resolve_recipe(name).eval_classifier
    gen = checkpoint.build(dict)
    metrics = evaluate_generator(gen, dataset, classifier, data_dir=data_dir)
    return {"model": name or gen.name, **metrics, "n": metrics["n_generated"], "limit": None}
