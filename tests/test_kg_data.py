"""KG readers (hadamard_zoo.data.kg) on small synthetic files in the real formats, plus one real-data check."""

import io
import tarfile

import numpy as np
import pytest

from hadamard_zoo.data import _common, kg

TRAIN = [("a", "likes", "b"), ("b", "likes", "c"), ("c", "knows", "a"), ("a", "knows", "d")]
VALID = [("d", "likes", "a")]
TEST = [("e", "knows", "b"), ("b", "owns", "c")]  # e and owns appear only in test


def _lines(triples):
    return "".join("\t".join(parts) + "\n" for parts in triples)


def make_tarball(path, splits=None, prefix=""):
    splits = splits or {"train": TRAIN, "valid": VALID, "test": TEST}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, triples in splits.items():
            data = _lines(triples).encode()
            info = tarfile.TarInfo(f"{prefix}{name}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_countries(folder, regions=("europe", "asia")):
    folder.mkdir(parents=True, exist_ok=True)
    entities = ["france", "spain", "china", "europe", "asia", "western_europe"]
    (folder / "entities.dict").write_text("".join(f"{i}\t{e}\n" for i, e in enumerate(entities)))
    (folder / "relations.dict").write_text("0\tneighbor\n1\tlocatedin\n")
    (folder / "regions.list").write_text("\n".join(regions))  # no trailing newline, like the real file
    (folder / "train.txt").write_text(_lines([("france", "neighbor", "spain"), ("france", "locatedin", "western_europe"),
                                              ("western_europe", "locatedin", "europe")]))
    (folder / "valid.txt").write_text(_lines([("spain", "locatedin", "europe")]))
    (folder / "test.txt").write_text(_lines([("china", "locatedin", "asia")]))
    return folder


def test_tarball_reader_ids_and_splits(tmp_path):
    ds = kg.read_triples_tarball(make_tarball(tmp_path / "toy.tar.gz"))
    assert ds.entities == ["a", "b", "c", "d", "e"]  # first appearance: train, valid, test
    assert ds.relations == ["likes", "knows", "owns"]
    assert ds.counts() == (4, 1, 2, 5, 3)
    np.testing.assert_array_equal(ds.train[0], [0, 0, 1])
    np.testing.assert_array_equal(ds.test, [[4, 1, 1], [1, 2, 2]])
    assert ds.entity_to_id["c"] == 2 and ds.relation_to_id["owns"] == 2
    assert ds.regions is None
    assert len(ds.all_true_triples()) == 7


def test_tarball_members_in_a_subfolder(tmp_path):
    ds = kg.read_triples_tarball(make_tarball(tmp_path / "toy.tar.gz", prefix="toy/"))
    assert ds.counts() == (4, 1, 2, 5, 3)


def test_malformed_and_incomplete_files_are_named(tmp_path):
    bad = make_tarball(tmp_path / "bad.tar.gz", {"train": [("a", "b")], "valid": VALID, "test": TEST})
    with pytest.raises(kg.KGDataError, match=r"train.txt, line 1: expected 'head<TAB>relation<TAB>tail'"):
        kg.read_triples_tarball(bad)
    no_test = make_tarball(tmp_path / "no_test.tar.gz", {"train": TRAIN, "valid": VALID})
    with pytest.raises(kg.KGDataError, match="has no test.txt"):
        kg.read_triples_tarball(no_test)


def test_countries_folder_keeps_dict_ids_and_regions(tmp_path):
    ds = kg.read_triples_folder(make_countries(tmp_path / "countries_S1"))
    assert ds.name == "countries_S1"
    assert ds.entities[3] == "europe" and ds.relations == ["neighbor", "locatedin"]
    np.testing.assert_array_equal(ds.regions, [3, 4])
    np.testing.assert_array_equal(ds.test, [[2, 1, 4]])
    (tmp_path / "countries_S1" / "test.txt").write_text("china\tlocatedin\tmars\n")
    with pytest.raises(kg.KGDataError, match="'mars'"):
        kg.read_triples_folder(tmp_path / "countries_S1")


def test_load_kg_data_dir_env_verify_and_cache(tmp_path, monkeypatch):
    make_tarball(tmp_path / "data" / "kg" / "nations.tar.gz")
    # counts are checked against the standard release
    with pytest.raises(kg.KGDataError, match=r"train 4 \(expected 1592\)"):
        kg.load_kg("nations", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    # HADAMARD_ZOO_DATA is the default data dir
    monkeypatch.setenv("HADAMARD_ZOO_DATA", str(tmp_path / "data"))
    ds = kg.load_kg("Nations", cache_dir=tmp_path / "cache", verify=False)
    assert ds.counts() == (4, 1, 2, 5, 3)
    assert list((tmp_path / "cache").glob("kg-nations-*.npz"))

    # second load comes from the cache: the parser is not called
    def boom(*a, **k):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(kg, "read_triples_tarball", boom)
    again = kg.load_kg("nations", cache_dir=tmp_path / "cache", verify=False)
    assert again.entities == ds.entities
    np.testing.assert_array_equal(again.test, ds.test)


def test_load_kg_countries_from_folder(tmp_path):
    make_countries(tmp_path / "kg" / "countries_S2")
    ds = kg.load_kg("countries_s2", data_dir=tmp_path, cache_dir=False, verify=False)
    assert ds.name == "countries_S2" and ds.num_entities == 6
    np.testing.assert_array_equal(ds.regions, [3, 4])


def test_missing_files_and_unknown_names_are_explained(tmp_path):
    with pytest.raises(_common.DatasetNotFoundError, match=r"WN18RR.tar.gz(.|\n)*TimDettmers/ConvE"):
        kg.load_kg("WN18RR", data_dir=tmp_path)
    with pytest.raises(ValueError, match="known:"):
        kg.load_kg("wn19")


@pytest.mark.data
def test_real_countries_and_wn18rr_counts(shared_datasets, tmp_path):
    s1 = kg.load_kg("countries_S1", data_dir=shared_datasets, cache_dir=tmp_path)
    assert s1.counts() == (1111, 24, 24, 271, 2)
    assert sorted(s1.entities[i] for i in s1.regions) == ["africa", "americas", "asia", "europe", "oceania"]
    assert set(s1.test[:, 1]) == {s1.relation_to_id["locatedin"]}
    wn = kg.load_kg("WN18RR", data_dir=shared_datasets, cache_dir=tmp_path)
    assert wn.counts() == (86835, 3034, 3134, 40943, 11)
    assert len(np.unique(wn.train[:, [0, 2]])) == 40559  # the entities seen in training
