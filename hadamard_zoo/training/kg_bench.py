"""Timing of KG training steps: batch construction vs the compiled train step (``hadamard-zoo bench kg``)."""

from __future__ import annotations

import time

import keras
import numpy as np

from hadamard_zoo.training.kg_sampling import NegativeSamplingDataset


def bench_train_step(model, dataset, batch_size=512, num_negatives=1024, shared_negatives=True, steps=3,
                     learning_rate=1e-4, jit_compile="auto"):
    """Time training steps (seconds per step, after one compile step); returns a dict.

    ``sample_s`` is the numpy batch construction, ``step_s`` the compiled
    forward + backward + Adam update (``train_on_batch``), both medians.
    """
    data = NegativeSamplingDataset(
        dataset.train, dataset.num_entities, dataset.num_relations, batch_size=batch_size,
        num_negatives=num_negatives, shared_negatives=shared_negatives,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=jit_compile)
    t0 = time.perf_counter()
    model.train_on_batch(data.batch(0))
    compile_s = time.perf_counter() - t0
    sample_s, step_s = [], []
    for i in range(1, steps + 1):
        t0 = time.perf_counter()
        x = data.batch(i)
        t1 = time.perf_counter()
        loss = model.train_on_batch(x)
        float(np.asarray(loss))  # wait for the result
        t2 = time.perf_counter()
        sample_s.append(t1 - t0)
        step_s.append(t2 - t1)
    return {
        "backend": keras.config.backend(), "batch_size": batch_size, "num_negatives": num_negatives,
        "shared_negatives": shared_negatives, "first_step_s": round(compile_s, 3),
        "sample_s": round(float(np.median(sample_s)), 4), "step_s": round(float(np.median(step_s)), 4),
        "steps_per_s": round(1.0 / float(np.median(np.add(step_s, sample_s))), 4),
    }


def main(argv=None):
    """``python -m hadamard_zoo.training.kg_bench MODEL [--steps N]``: print the step timing of a KG recipe as JSON,
    with the hours its recipe's ``steps`` would take at that rate."""
    import argparse
    import json

    from hadamard_zoo import models
    from hadamard_zoo.training.kg import load_dataset
    from hadamard_zoo.training.recipes import resolve_recipe

    parser = argparse.ArgumentParser(prog="python -m hadamard_zoo.training.kg_bench", description=main.__doc__)
    parser.add_argument("model", help="a KG variant, e.g. rotate_wn18rr_small")
    parser.add_argument("--dataset", default=None, help="default: the recipe's")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one compile step")
    args = parser.parse_args(argv)
    recipe = resolve_recipe(args.model)
    ds = load_dataset(args.dataset or recipe.dataset, args.data_dir)
    model = models.create_model(args.model, dataset=ds)
    out = bench_train_step(model, ds, batch_size=recipe.batch_size, num_negatives=recipe.num_negatives,
                           shared_negatives=recipe.shared_negatives, steps=args.steps,
                           learning_rate=recipe.learning_rate)
    out["model"] = args.model
    if recipe.steps:
        out["recipe_steps"] = recipe.steps
        out["estimated_hours_for_recipe_steps"] = round(recipe.steps / out["steps_per_s"] / 3600, 2)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
