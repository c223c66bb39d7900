"""Offline readers of the knowledge-graph benchmarks (triples of ``head<TAB>relation<TAB>tail``).

Two on-disk formats are read, the ones in ``../shared/datasets/kg/``:

* the ConvE packaging (TimDettmers/ConvE): a ``<name>.tar.gz`` holding
  ``train.txt``, ``valid.txt`` and ``test.txt`` (FB15k-237, WN18RR, nations,
  kinship, umls).  Entity and relation ids are assigned in order of first
  appearance in train, then valid, then test, so entities never seen in
  training get the largest ids.
* the RotatE packaging (DeepGraphLearning/KnowledgeGraphEmbedding): a folder
  with ``entities.dict`` / ``relations.dict`` (``id<TAB>name``), the three
  splits and, for Countries, ``regions.list``.  The ids of the ``.dict`` files
  are kept, so embeddings line up with the reference code's.

Names are NFKC-normalized and stripped, as the reference code reads them.

>>> from hadamard_zoo.data import kg
>>> ds = kg.load_kg("WN18RR")              # data dir: argument, $HADAMARD_ZOO_DATA, ../shared/datasets
>>> ds.train.shape, ds.num_entities, ds.num_relations
((86835, 3), 40943, 11)

Data and cache locations follow :mod:`hadamard_zoo.data._common`: ``data_dir``
argument, else ``$HADAMARD_ZOO_DATA``, else ``<repo>/../shared/datasets``; the
decoded id arrays are cached as ``.npz`` under ``cache_dir``, else
``$HADAMARD_ZOO_CACHE``, else ``~/.cache/hadamard_zoo`` (``cache_dir=False``
turns it off).  Nothing is ever downloaded.
"""

from __future__ import annotations

import tarfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hadamard_zoo.data import _common

SPLITS = ("train", "valid", "test")
_CACHE_FORMAT = 1

# name -> (file or folder under kg/, format, expected counts, where it comes from)
# counts: (train, valid, test, entities, relations); entities/relations over all splits.
_KNOWN = {
    "FB15k-237": ("FB15k-237.tar.gz", "tarball", (272115, 17535, 20466, 14541, 237),
                  "Toutanova & Chen 2015, the ConvE packaging: github.com/TimDettmers/ConvE (FB15k-237.tar.gz)"),
    "WN18RR": ("WN18RR.tar.gz", "tarball", (86835, 3034, 3134, 40943, 11),
               "Dettmers et al. 2018: github.com/TimDettmers/ConvE (WN18RR.tar.gz)"),
    "nations": ("nations.tar.gz", "tarball", (1592, 199, 201, 14, 55),
                "github.com/TimDettmers/ConvE (nations.tar.gz)"),
    "kinship": ("kinship.tar.gz", "tarball", (8544, 1068, 1074, 104, 25),
                "github.com/TimDettmers/ConvE (kinship.tar.gz)"),
    "umls": ("umls.tar.gz", "tarball", (5216, 652, 661, 135, 46),
             "github.com/TimDettmers/ConvE (umls.tar.gz)"),
    "countries_S1": ("countries_S1", "folder", (1111, 24, 24, 271, 2),
                     "Bouchard et al. 2015: github.com/DeepGraphLearning/KnowledgeGraphEmbedding (data/countries_S1/)"),
    "countries_S2": ("countries_S2", "folder", (1063, 24, 24, 271, 2),
                     "Bouchard et al. 2015: github.com/DeepGraphLearning/KnowledgeGraphEmbedding (data/countries_S2/)"),
    "countries_S3": ("countries_S3", "folder", (985, 24, 24, 271, 2),
                     "Bouchard et al. 2015: github.com/DeepGraphLearning/KnowledgeGraphEmbedding (data/countries_S3/)"),
}
_ALIASES = {k.lower().replace("-", "").replace("_", ""): k for k in _KNOWN}


class KGDataError(_common.DatasetError):
    """A KG dataset file is malformed or does not have the standard counts.

    A missing file raises :class:`hadamard_zoo.data._common.DatasetNotFoundError`
    (a ``FileNotFoundError``) naming the paths tried and where the file comes from.
    """


@dataclass
class KGDataset:
    """A knowledge graph split into train/valid/test id triples.

    Attributes:
        name: dataset name.
        entities, relations: id -> name lists.
        train, valid, test: ``(N, 3)`` int64 arrays of ``(head, relation, tail)`` ids.
        regions: entity ids of the candidate answers of Countries (``regions.list``), else None.
        source: the file or folder read.
    """

    name: str
    entities: list
    relations: list
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    regions: np.ndarray | None = None
    source: str = ""
    _entity_index: dict | None = field(default=None, repr=False, compare=False)
    _relation_index: dict | None = field(default=None, repr=False, compare=False)

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    @property
    def entity_to_id(self) -> dict:
        if self._entity_index is None:
            self._entity_index = {e: i for i, e in enumerate(self.entities)}
        return self._entity_index

    @property
    def relation_to_id(self) -> dict:
        if self._relation_index is None:
            self._relation_index = {r: i for i, r in enumerate(self.relations)}
        return self._relation_index

    def split(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}.")
        return getattr(self, name)

    def all_true_triples(self) -> np.ndarray:
        """Unique triples of train + valid + test (the filter of the filtered metrics)."""
        return np.unique(np.concatenate([self.train, self.valid, self.test]), axis=0)

    def counts(self) -> tuple:
        return (len(self.train), len(self.valid), len(self.test), self.num_entities, self.num_relations)

    def __repr__(self):
        n_tr, n_va, n_te, n_e, n_r = self.counts()
        return (f"KGDataset({self.name!r}: {n_e} entities, {n_r} relations, "
                f"train/valid/test {n_tr}/{n_va}/{n_te})")


# ------------------------------------------------------------------ locations
def canonical_name(name: str) -> str:
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in _ALIASES:
        raise ValueError(
            f"Unknown KG dataset {name!r}; known: {sorted(_KNOWN)}. For other data use "
            f"read_triples_tarball(path) or read_triples_folder(path)."
        )
    return _ALIASES[key]


def known_datasets() -> list[str]:
    return sorted(_KNOWN)


def dataset_path(name: str, data_dir=None) -> Path:
    """Where ``name`` is read from: ``<data dir>/kg/<file>`` (or ``<data dir>/<file>``)."""
    name = canonical_name(name)
    filename, fmt, _, origin = _KNOWN[name]
    tried = []
    for root in _common.data_dirs(data_dir):
        for path in (root / "kg" / filename, root / filename):
            tried.append(path)
            if (fmt == "tarball" and path.is_file()) or (fmt == "folder" and path.is_dir()):
                return path
    what = f"{name} ({filename}{'' if fmt == 'tarball' else '/ with entities.dict, relations.dict, train/valid/test.txt'})"
    raise _common.missing(what, tried, f"it is {origin}; put it under <data dir>/kg/.")


# ------------------------------------------------------------------ parsing
def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _parse_triples(lines, where: str):
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) != 3:
            raise KGDataError(
                f"{where}, line {lineno}: expected 'head<TAB>relation<TAB>tail', got {line.rstrip()!r}."
            )
        out.append(tuple(_clean(p) for p in parts))
    return out


def _ids_in_order(named_splits):
    entities, relations = {}, {}
    for split in named_splits:
        for h, r, t in split:
            entities.setdefault(h, len(entities))
            relations.setdefault(r, len(relations))
            entities.setdefault(t, len(entities))
    return entities, relations


def _to_ids(named, entities, relations, where):
    arr = np.empty((len(named), 3), dtype=np.int64)
    for i, (h, r, t) in enumerate(named):
        try:
            arr[i] = (entities[h], relations[r], entities[t])
        except KeyError as exc:
            raise KGDataError(f"{where}: triple {i + 1} ({h}, {r}, {t}) names {exc.args[0]!r}, "
                              f"which is not in the entity/relation dictionary.") from None
    return arr


def _read_member(tar: tarfile.TarFile, split: str, path: Path) -> list[str]:
    members = [m for m in tar.getmembers() if m.isfile() and Path(m.name).name == f"{split}.txt"]
    if not members:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        raise KGDataError(f"{path} has no {split}.txt (it holds {names}); expected train.txt, valid.txt "
                          f"and test.txt of head<TAB>relation<TAB>tail lines.")
    with tar.extractfile(members[0]) as f:
        return f.read().decode("utf-8").splitlines()


def read_triples_tarball(path, name: str | None = None) -> KGDataset:
    """Read a ConvE-style ``.tar.gz`` (``train.txt`` / ``valid.txt`` / ``test.txt``)."""
    path = Path(path)
    if not path.is_file():
        raise KGDataError(f"{path} does not exist (a .tar.gz with train.txt, valid.txt, test.txt).")
    try:
        with tarfile.open(path, "r:*") as tar:
            named = {s: _parse_triples(_read_member(tar, s, path), f"{path}:{s}.txt") for s in SPLITS}
    except tarfile.TarError as exc:
        raise KGDataError(f"{path} is not a readable tar archive: {exc}") from exc
    entities, relations = _ids_in_order([named[s] for s in SPLITS])
    arrays = {s: _to_ids(named[s], entities, relations, f"{path}:{s}.txt") for s in SPLITS}
    return KGDataset(
        name=name or path.name.split(".")[0], entities=list(entities), relations=list(relations),
        source=str(path), **arrays,
    )


def _read_dict(path: Path) -> list[str]:
    if not path.is_file():
        raise KGDataError(f"{path} is missing (lines of 'id<TAB>name').")
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise KGDataError(f"{path}, line {lineno}: expected 'id<TAB>name', got {line!r}.")
        pairs.append((int(parts[0]), _clean(parts[1])))
    ids = sorted(i for i, _ in pairs)
    if ids != list(range(len(pairs))):
        raise KGDataError(f"{path}: ids must be 0..{len(pairs) - 1} without gaps or repeats.")
    names = [None] * len(pairs)
    for i, n in pairs:
        names[i] = n
    return names


def read_triples_folder(path, name: str | None = None) -> KGDataset:
    """Read a RotatE-style folder: ``entities.dict``, ``relations.dict``, splits, optional ``regions.list``."""
    path = Path(path)
    if not path.is_dir():
        raise KGDataError(f"{path} is not a folder (expected entities.dict, relations.dict, train/valid/test.txt).")
    entity_names = _read_dict(path / "entities.dict")
    relation_names = _read_dict(path / "relations.dict")
    entities = {n: i for i, n in enumerate(entity_names)}
    relations = {n: i for i, n in enumerate(relation_names)}
    arrays = {}
    for s in SPLITS:
        f = path / f"{s}.txt"
        if not f.is_file():
            raise KGDataError(f"{f} is missing (lines of head<TAB>relation<TAB>tail).")
        arrays[s] = _to_ids(_parse_triples(f.read_text(encoding="utf-8").splitlines(), str(f)),
                            entities, relations, str(f))
    regions = None
    if (path / "regions.list").is_file():
        names = [_clean(x) for x in (path / "regions.list").read_text(encoding="utf-8").splitlines() if x.strip()]
        missing = [n for n in names if n not in entities]
        if missing:
            raise KGDataError(f"{path / 'regions.list'}: regions {missing} are not in entities.dict.")
        regions = np.asarray([entities[n] for n in names], dtype=np.int64)
    return KGDataset(
        name=name or path.name, entities=entity_names, relations=relation_names,
        regions=regions, source=str(path), **arrays,
    )


# ------------------------------------------------------------------ cache
def _source_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())


def _to_cache(ds: KGDataset) -> dict:
    regions = ds.regions if ds.regions is not None else np.zeros((0,), np.int64)
    return dict(
        kg_format=np.int64(_CACHE_FORMAT), train=ds.train, valid=ds.valid, test=ds.test,
        entities=np.asarray(ds.entities, dtype=str), relations=np.asarray(ds.relations, dtype=str),
        regions=regions, has_regions=np.bool_(ds.regions is not None),
    )


def _from_cache(z: dict | None, name: str, source: str) -> KGDataset | None:
    if z is None or int(z.get("kg_format", -1)) != _CACHE_FORMAT:
        return None
    return KGDataset(
        name=name, entities=z["entities"].tolist(), relations=z["relations"].tolist(),
        train=z["train"], valid=z["valid"], test=z["test"],
        regions=z["regions"] if bool(z["has_regions"]) else None, source=source,
    )


# ------------------------------------------------------------------ public loader
def verify_counts(ds: KGDataset, expected=None) -> None:
    """Raise :class:`KGDataError` when ``ds`` does not have the published split sizes."""
    if expected is None:
        expected = _KNOWN[canonical_name(ds.name)][2]
    got = ds.counts()
    if tuple(got) != tuple(expected):
        labels = ("train", "valid", "test", "entities", "relations")
        diff = ", ".join(f"{k} {g} (expected {e})" for k, g, e in zip(labels, got, expected) if g != e)
        raise KGDataError(
            f"{ds.name} read from {ds.source} does not have the standard split sizes: {diff}. "
            f"The file is not the standard release; restore it (see the data README), or pass verify=False."
        )


def load_kg(name: str, data_dir=None, cache_dir=None, verify: bool = True) -> KGDataset:
    """Load a known KG benchmark by name.

    Args:
        name: one of :func:`known_datasets` (``"FB15k-237"``, ``"WN18RR"``,
            ``"countries_S1"``...; case, ``-`` and ``_`` are ignored).
        data_dir: the datasets folder holding ``kg/`` (or the files themselves);
            default ``$HADAMARD_ZOO_DATA``, else ``../shared/datasets`` next to the repository.
        cache_dir: where decoded arrays are cached; None for the default, False for no cache.
        verify: check the split sizes, entity and relation counts against the standard release.
    """
    name = canonical_name(name)
    path = dataset_path(name, data_dir)
    fmt = _KNOWN[name][1]
    cache_file = _common.cache_path(cache_dir, f"kg-{name}", "all", _source_files(path))
    ds = _from_cache(_common.cache_load(cache_file), name, str(path))
    if ds is None:
        ds = read_triples_tarball(path, name) if fmt == "tarball" else read_triples_folder(path, name)
        _common.cache_save(cache_file, **_to_cache(ds))
    if verify:
        verify_counts(ds)
    return ds
