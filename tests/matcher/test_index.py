import numpy as np
import pytest

from matcher.index import CHUNK_SLOTS, FaissIndex, Manifest, chunk_id, manifest_path


def _unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_add_search_remove_by_record():
    rng = np.random.default_rng(0)
    idx = FaissIndex(16)
    vecs = _unit(rng, 6)
    # record 1 has two passages, records 2..5 one each
    ids = np.array([chunk_id(1, 0), chunk_id(1, 1), chunk_id(2, 0), chunk_id(3, 0),
                    chunk_id(4, 0), chunk_id(5, 0)])
    idx.add(ids, vecs)
    assert idx.record_ids() == {1, 2, 3, 4, 5}
    best = idx.search(vecs[1], 3)
    assert next(iter(best)) == 1, "a record is found by its second passage"
    assert best[1] == pytest.approx(1.0, abs=1e-5)
    assert idx.remove_records([1]) == 2
    assert idx.record_ids() == {2, 3, 4, 5}
    assert 1 not in idx.search(vecs[1], 5)


def test_allowed_records_never_cut_results_below_k():
    rng = np.random.default_rng(1)
    idx = FaissIndex(16)
    n = 500
    idx.add(np.arange(n, dtype=np.int64) * CHUNK_SLOTS, _unit(rng, n))
    allowed = set(range(0, n, 50))  # 10 records far from the query, most likely
    got = idx.search(_unit(rng, 1), 10, allowed)
    assert set(got) == allowed
    assert idx.search(_unit(rng, 1), 10, set()) == {}


def test_save_and_load_roundtrip(tmp_path):
    rng = np.random.default_rng(2)
    idx = FaissIndex(16)
    vecs = _unit(rng, 4)
    idx.add(np.arange(4) * CHUNK_SLOTS, vecs)
    path = tmp_path / "achievement.faiss"
    idx.save(path, Manifest("m", 16, 4, 4, "c", 7))
    loaded = FaissIndex.load(path)
    assert loaded.record_ids() == {0, 1, 2, 3}
    assert Manifest.read(manifest_path(path)).revision == 7
    assert list(loaded.search(vecs[2], 1)) == [2]


def test_wrong_dimension_is_refused():
    with pytest.raises(ValueError, match="dimension"):
        FaissIndex(16).add(np.array([0]), np.zeros((1, 8), dtype=np.float32))
