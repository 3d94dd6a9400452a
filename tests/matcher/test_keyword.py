"""The keyword index scores exactly as bm25s does, and keeps its statistics frozen between snapshots."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.keyword import KeywordIndex, Vocabulary, record_tokens

DOCS = {
    1: ("高强高导铜合金带材", "Cu-Ni-Si系铜合金, 抗拉强度650MPa, 导电率68%IACS, 适用于引线框架。"),
    2: ("脐橙果汁非热杀菌", "超高压处理结合天然抗氧化剂, NFC橙汁冷藏60天色差变化小于2。"),
    3: ("烧结钕铁硼晶界扩散", "晶界扩散镝铽工艺, 矫顽力提升30%, 重稀土用量降低60%。"),
    4: ("铜合金引线框架冲压", "引线框架用铜带冲压模具寿命提高, 毛刺小于5微米。"),
    5: ("锂云母提锂渣利用", "锂渣制备建材, 提取铷铯, 年处理锂渣40万吨。"),
}
QUERIES = ["铜合金 引线框架 导电率", "橙汁 杀菌 护色", "稀土 永磁 矫顽力 铜合金", "没有的词"]


def _index(docs) -> KeywordIndex:
    kw = KeywordIndex()
    kw.set_many((rid, record_tokens(t, b)) for rid, (t, b) in docs.items())
    kw.use_stats(kw.compute_stats())
    return kw


@pytest.mark.parametrize("query", QUERIES)
def test_scores_equal_bm25s_lucene(query):
    import bm25s

    from matcher.text import tokenize

    kw = _index(DOCS)
    ids = list(DOCS)
    model = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
    model.index([record_tokens(*DOCS[i]) for i in ids], show_progress=False)
    tokens = tokenize(query)
    known = [t for t in tokens if t in model.vocab_dict]
    expected = model.get_scores(known) if known else np.zeros(len(ids))
    got_ids, got = kw.score_all(tokens)
    by_id = dict(zip(got_ids.tolist(), got.tolist(), strict=True))
    assert [by_id[i] for i in ids] == pytest.approx(list(expected), rel=1e-5, abs=1e-6)


def test_statistics_stay_frozen_until_a_new_snapshot():
    kw = _index(DOCS)
    before = dict(zip(*[a.tolist() for a in kw.score_all(["铜合金", "引线框架"])], strict=True))
    kw.set(6, record_tokens("铜合金线材", "铜合金线材拉拔工艺, 铜合金铜合金。"))
    kw.remove(2)
    after_ids, after = kw.score_all(["铜合金", "引线框架"])
    after = dict(zip(after_ids.tolist(), after.tolist(), strict=True))
    # the old records keep their exact scores; the new one is scored with the same statistics
    assert after[1] == before[1] and after[4] == before[4]
    assert after[6] > 0 and after.get(2, 0.0) == 0.0
    assert kw.stats.n == 5
    kw.use_stats(kw.compute_stats())
    assert kw.stats.n == 5  # 5 records again: 2 removed, 6 added
    refreshed = dict(zip(*[a.tolist() for a in kw.score_all(["铜合金", "引线框架"])], strict=True))
    assert refreshed[1] != before[1], "a new snapshot changes the document frequencies"


def test_update_replaces_a_document_and_weights_match_scores():
    vocab = Vocabulary()
    kw = KeywordIndex(vocab=vocab)
    kw.set_many((rid, record_tokens(t, b)) for rid, (t, b) in DOCS.items())
    kw.use_stats(kw.compute_stats())
    kw.set(3, record_tokens("铜合金带材", "铜合金带材退火工艺"))
    ids, scores = kw.score_all(["铜合金"])
    assert dict(zip(ids.tolist(), scores.tolist(), strict=True))[3] > 0
    assert sum(1 for i in ids.tolist() if i == 3) == 1, "the old version of record 3 is gone"
    # a document's weight vector scores a query the way score_all does
    tids, weights = kw.weights_of(1)
    q_ids, q_counts = vocab.counts(["铜合金", "导电率", "导电率"], add=False)
    w = dict(zip(tids.tolist(), weights.tolist(), strict=True))
    expected = sum(w.get(t, 0.0) * c for t, c in zip(q_ids.tolist(), q_counts.tolist(), strict=True))
    got = dict(zip(*[a.tolist() for a in kw.score_all(["铜合金", "导电率", "导电率"])], strict=True))[1]
    assert got == pytest.approx(expected, rel=1e-5)
