"""Fixed inputs for the shipped checkpoints (shared by the test and the fixture generator)."""

import numpy as np


def example_input(model, seed=0, batch=4):
    rng = np.random.default_rng(seed)
    feeds = []
    try:
        specs = model.inputs
    except AttributeError:  # subclassed models (RotatE) take (head, relation, tail) triples
        return rng.integers(0, 2, size=(batch, 3)).astype("int32")
    for spec in specs:
        shape = (batch,) + tuple(16 if d is None else d for d in spec.shape[1:])  # LMs: 16 tokens
        dtype = str(spec.dtype)
        if "int" in dtype:
            # knowledge-graph triples (head, relation, tail) or token ids: small valid ids
            feeds.append(rng.integers(0, 2, size=shape).astype(dtype))
        elif len(shape) == 4:  # images: raw pixels
            feeds.append(rng.uniform(0, 255, size=shape).astype("float32"))
        else:  # a generator's noise, U(-1, 1) as it was trained with
            feeds.append(rng.uniform(-1, 1, size=shape).astype("float32"))
    return feeds[0] if len(feeds) == 1 else feeds


if __name__ == "__main__":  # regenerate tests/data/checkpoint_outputs.npz (run under KERAS_BACKEND=jax)
    import os

    import keras

    from hadamard_zoo import models, pretrained

    out = {}
    for entry in pretrained.load_manifest():
        model = models.create_model(entry["model"], pretrained=entry["name"])
        out[entry["name"]] = keras.ops.convert_to_numpy(model(example_input(model)))
    path = os.path.join(os.path.dirname(__file__), "data", "checkpoint_outputs.npz")
    np.savez(path, **out)
    print("wrote", path, sorted(out))
