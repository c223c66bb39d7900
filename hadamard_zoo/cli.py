"""The ``hadamard-zoo`` command (also ``python -m hadamard_zoo``).

    hadamard-zoo list [PATTERN]                  models: name, family, published params, pretrained, recipe
    hadamard-zoo info NAME                       a model's facts, checkpoints and training recipe
    hadamard-zoo datasets                        the datasets the readers know and where they were found
    hadamard-zoo train MODEL [--dataset D --epochs N --batch-size B --output-dir DIR --limit N ...]
    hadamard-zoo eval CHECKPOINT|TAG|RUN_DIR [--model NAME --dataset D --limit N]
    hadamard-zoo bench ...                       python -m hadamard_zoo.bench ...
    hadamard-zoo demo [MODEL ...]                python -m hadamard_zoo.demo

The backend is Keras's: ``KERAS_BACKEND=jax hadamard-zoo train ...`` or ``--backend jax``.
Exit status: 0 success, 1 missing files (datasets, checkpoints), 2 bad input (unknown
model, dataset or checkpoint names, bad options).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys

BACKENDS = ("jax", "tensorflow", "torch")
DELEGATED = {"bench": "hadamard_zoo.bench", "demo": "hadamard_zoo.demo"}


class CLIError(Exception):
    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


def _parser():
    p = argparse.ArgumentParser(
        prog="hadamard-zoo",
        description="Keras 3 model zoo of Hadamard-product architectures (jax, tensorflow, torch).",
    )
    p.add_argument("--backend", choices=BACKENDS, help="Keras backend (default: $KERAS_BACKEND or Keras's)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("list", help="list the models (glob PATTERN, e.g. 'starnet*')")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--family", default=None)

    s = sub.add_parser("info", help="facts about one model: family, paper, params, checkpoints, recipe")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("datasets", help="the known datasets and where their files were found")

    s = sub.add_parser("train", help="train a model by its recipe (zoo_configs/recipes/)")
    s.add_argument("model")
    s.add_argument("--dataset", help="cifar10 | fashion_mnist | mnist_5k | tiny_shakespeare | a KG dataset such as "
                   "WN18RR (default: the recipe's; `hadamard-zoo datasets` lists them)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--steps", type=int, help="knowledge-graph models: optimizer steps in all (the recipe's steps)")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--learning-rate", "--lr", type=float, dest="learning_rate")
    s.add_argument("--seed", type=int)
    s.add_argument("--init-weights", help="start from these weights (a checkpoint tag or a .weights.h5 path): "
                   "a warm restart or a fine-tune of the same architecture")
    s.add_argument("--augment", metavar="KEY=VALUE,...",
                   help="change the recipe's augmentations, e.g. mixup=0.2,cutmix=1.0 or flip=false,cutout=8 "
                   "(keys: crop_padding, flip, cutout, mixup, cutmix; 0 or false turns one off)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", dest="set_values",
                   help="change any other recipe value, e.g. --set weight_decay=0.05 --set optimizer=sgd "
                   "(repeatable; VALUE is JSON or YAML; `hadamard-zoo info MODEL` shows the recipe)")
    s.add_argument("--output-dir", help="run folder (default runs/<model>)")
    s.add_argument("--limit", type=int, help="use at most N training/validation/test samples (a quick run)")
    s.add_argument("--no-resume", action="store_true", help="start over, deleting the folder's checkpoints")
    s.add_argument("--data-dir", help="dataset folder (default $HADAMARD_ZOO_DATA or ../shared/datasets)")
    s.add_argument("--cache-dir", help="decoded-array cache (default $HADAMARD_ZOO_CACHE or ~/.cache/hadamard_zoo)")
    s.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None, help="fit's verbosity (1: progress bar)")

    s = sub.add_parser("eval", help="evaluate a checkpoint: a manifest tag, a run folder, .weights.h5 or .keras")
    s.add_argument("checkpoint")
    s.add_argument("--model", help="the model a bare .weights.h5 belongs to")
    s.add_argument("--dataset")
    s.add_argument("--limit", type=int, help="a fixed seeded subset of N samples")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--data-dir")
    s.add_argument("--cache-dir")
    s.add_argument("--json", action="store_true", help="print the result as JSON")

    s = sub.add_parser("soup", help="average checkpoints of one image classifier into one (a uniform model soup)")
    s.add_argument("model")
    s.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="two or more checkpoint tags or .weights.h5 files of MODEL")
    s.add_argument("--dataset", help="training images for BatchNorm and the test split (default: the recipe's)")
    s.add_argument("--output-dir", help="run folder (default runs/<model>_soup)")
    s.add_argument("--batch-size", type=int, default=128, help="images per BatchNorm batch (default 128)")
    s.add_argument("--limit", type=int, help="use at most N training and test images (a quick check)")
    s.add_argument("--data-dir")
    s.add_argument("--cache-dir")

    for name, module in DELEGATED.items():
        s = sub.add_parser(name, help=f"run python -m {module} with the remaining arguments", add_help=False)
        s.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _switch_backend(backend, argv):
    """Re-run this command under ``KERAS_BACKEND=backend`` when another backend is active."""
    current = os.environ.get("KERAS_BACKEND")
    if backend is None or current == backend:
        return
    if "keras" in sys.modules:
        import keras

        if keras.config.backend() == backend:
            return
    env = dict(os.environ, KERAS_BACKEND=backend)
    os.execve(sys.executable, [sys.executable, "-m", "hadamard_zoo", *argv], env)


def _fmt_params(n):
    return f"{int(n):,}" if n is not None else "-"


def cmd_list(args):
    from hadamard_zoo import models, pretrained
    from hadamard_zoo.training.recipes import load_recipes

    names = models.list_models(args.pattern, family=args.family)
    if not names:
        raise CLIError(f"no model matches {args.pattern!r}" + (f" in family {args.family!r}" if args.family else "")
                       + f"; families: {', '.join(models.list_families())}.")
    with_weights = {e["model"] for e in pretrained.load_manifest()}
    recipes = load_recipes()
    rows = []
    for n in names:
        cfg = models.get_config(n)
        rows.append((n, cfg.family, _fmt_params(cfg.meta.get("params")), "yes" if n in with_weights else "no",
                     (recipes[n].values.get("dataset") or "any (--dataset)") if n in recipes else "-"))
    header = ("name", "family", "params (published)", "pretrained", "recipe")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).rjust(w) if i == 2 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print(f"\n{len(rows)} model(s)")
    return 0


def cmd_info(args):
    from hadamard_zoo import models, pretrained
    from hadamard_zoo.training.recipes import load_recipes

    info = models.model_info(args.name)  # unknown -> ValueError with suggestions
    recipe = load_recipes().get(info["name"])
    info["recipe"] = recipe.to_dict() if recipe else None
    info["checkpoints"] = [
        {k: e[k] for k in ("name", "dataset", "split", "metric", "value", "eval_command") if k in e}
        for e in pretrained.entries_for(info["name"])
    ]
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(info["name"])
    for key in ("family", "kind", "paper", "reference", "license", "config_file"):
        if info.get(key):
            print(f"  {key:18} {info[key]}")
    print(f"  {'params (published)':18} {_fmt_params(info['published_params'])}")
    print(f"  {'input_shape':18} {info.get('input_shape')}")
    print(f"  {'arguments':18} {json.dumps(info['arguments'], default=str)}")
    if info["checkpoints"]:
        print("  checkpoints:")
        for c in info["checkpoints"]:
            print(f"    {c['name']}: {c['metric']} {c['value']} on {c['dataset']} ({c['split']}); {c.get('eval_command', '')}")
    else:
        print(f"  {'checkpoints':18} none")
    if recipe:
        from hadamard_zoo.training.recipes import resolve_recipe

        r = resolve_recipe(info["name"]).to_dict()
        print(f"  recipe ({recipe.source}):")
        keys = ["dataset", "epochs", *(k for k in recipe.values if k not in ("dataset", "epochs", "description",
                                                                          "by_dataset"))]
        for key in keys:  # the recipe file's own keys (the rest are defaults: `info --json` shows all)
            print(f"    {key:18} {r.get(key)}")
        print(f"  train: hadamard-zoo train {info['name']}")
    return 0


def cmd_datasets(args):
    from hadamard_zoo.data import DATASETS, DatasetNotFoundError, images, kg, text

    finders = {
        "cifar10": images.cifar10_path,
        "fashion_mnist": images.fashion_mnist_path,
        "mnist_5k": images.mnist_5k_path,
        "tiny_shakespeare": text.tiny_shakespeare_path,
    }
    rows = [(name, info.display, finders[name]) for name, info in DATASETS.items()]
    rows += [(name, "knowledge graph", lambda name=name: kg.dataset_path(name)) for name in kg.known_datasets()]
    for name, display, find in rows:
        try:
            where = str(find())
        except DatasetNotFoundError as exc:
            where = "MISSING - " + str(exc).splitlines()[-1]
        print(f"{name:18} {display}\n{'':18} {where}")
    return 0


def cmd_train(args):
    from hadamard_zoo import training
    from hadamard_zoo.training import command_text

    overrides = command_text.parse_set(args.set_values)
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.init_weights is not None:
        overrides["init_weights"] = args.init_weights
    if args.augment is not None:  # merged onto the recipe's augmentations (for --dataset's entry)
        from hadamard_zoo.models import get_config

        changes = command_text.parse_augment(args.augment)
        base = training.resolve_recipe(get_config(args.model).name, args.dataset)
        overrides["augment"] = {**base.values["augment"], **changes}
    verbose = "auto" if args.verbose is None else args.verbose
    results = training.train(
        args.model, dataset=args.dataset, epochs=args.epochs, steps=args.steps, batch_size=args.batch_size,
        output_dir=args.output_dir, resume=not args.no_resume, limit=args.limit, verbose=verbose,
        data_dir=args.data_dir, cache_dir=args.cache_dir, **overrides,
    )
    if isinstance(results, dict) and "final_weights" in results:
        print(f"Run folder: {os.path.dirname(results['final_weights'])} (results.json, history.csv, "
              f"learning_curve.png, checkpoints/)")
    return 0


def cmd_eval(args):
    from hadamard_zoo import training

    result = training.evaluate_checkpoint(
        args.checkpoint, model=args.model, dataset=args.dataset, limit=args.limit, batch_size=args.batch_size,
        data_dir=args.data_dir, cache_dir=args.cache_dir, verbose=not args.json,
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_soup(args):
    from hadamard_zoo.training.soup import soup

    results = soup(args.model, args.checkpoints, dataset=args.dataset, output_dir=args.output_dir,
                   batch_size=args.batch_size, limit=args.limit, data_dir=args.data_dir, cache_dir=args.cache_dir)
    print(f"Run folder: {os.path.dirname(results['final_weights'])} (run.json, results.json, final.weights.h5)")
    return 0


def delegate(module, argv):
    """Run ``python -m module argv...`` in this process; its exit status is returned."""
    if importlib.util.find_spec(module) is None:
        raise CLIError(f"{module} is not part of this installation of hadamard_zoo.")
    mod = importlib.import_module(module)
    main = getattr(mod, "main", None)
    try:
        if callable(main):
            rc = main(list(argv))
        else:
            import runpy

            saved = sys.argv
            sys.argv = [module, *argv]
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            finally:
                sys.argv = saved
            rc = 0
    except SystemExit as exc:
        rc = exc.code
    if rc is None or not isinstance(rc, int):
        return 0 if rc is None or not isinstance(rc, str) else (print(rc, file=sys.stderr) or 1)
    return rc


COMMANDS = {"list": cmd_list, "info": cmd_info, "datasets": cmd_datasets, "train": cmd_train, "eval": cmd_eval,
            "soup": cmd_soup}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # bench/demo take their own options, --help included: hand them over before parsing.
    rest = argv
    backend = None
    if len(rest) >= 2 and rest[0] == "--backend":
        backend, rest = rest[1], rest[2:]
    elif rest and rest[0].startswith("--backend="):
        backend, rest = rest[0].split("=", 1)[1], rest[1:]
    if rest and rest[0] in DELEGATED:
        if backend is not None and backend not in BACKENDS:
            print(f"hadamard-zoo: error: --backend must be one of {BACKENDS}", file=sys.stderr)
            return 2
        _switch_backend(backend, argv)
        try:
            return delegate(DELEGATED[rest[0]], rest[1:])
        except CLIError as exc:
            print(f"hadamard-zoo: error: {exc}", file=sys.stderr)
            return exc.code

    args = _parser().parse_args(argv)
    _switch_backend(args.backend, argv)
    return run(args)


def run(args) -> int:
    from hadamard_zoo.data import DatasetNotFoundError

    try:
        return COMMANDS[args.command](args)
    except CLIError as exc:
        print(f"hadamard-zoo: error: {exc}", file=sys.stderr)
        return exc.code
    except (DatasetNotFoundError, FileNotFoundError) as exc:
        print(f"hadamard-zoo: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, NotImplementedError) as exc:  # unknown names, bad recipes, bad checkpoints
        print(f"hadamard-zoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nhadamard-zoo: interrupted; run the same command again to resume from the last epoch checkpoint.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
