from matcher.text import passages, sentences, tokenize


def test_technical_terms_and_model_numbers_stay_whole():
    tokens = tokenize("采用晶界扩散提高烧结钕铁硼矫顽力, 牌号C19400, LiFePO4, 5G模块")
    for term in ("晶界扩散", "烧结钕铁硼", "c19400", "lifepo4", "5g"):
        assert term in tokens
    assert "的" not in tokenize("铜合金的强度")


def test_sentences_split_chinese_and_english():
    assert sentences("第一句。第二句！Third one. Fourth?") == ["第一句。", "第二句！", "Third one.", "Fourth?"]


def test_short_record_is_one_passage():
    assert passages("标题", "正文内容。", len, 100) == ["标题\n正文内容。"]


def test_long_record_is_cut_at_sentences_and_nothing_is_lost():
    body = "".join(f"第{i}句讲述一个独立的技术要点。" for i in range(60))
    out = passages("长标题", body, len, 80)
    assert len(out) > 5
    assert all(len(p) <= 80 for p in out)
    assert all(p.startswith("长标题\n") for p in out)
    joined = "".join(p.split("\n", 1)[1] for p in out)
    assert joined == body


def test_overlong_sentence_is_cut_by_characters():
    body = "甲" * 500
    out = passages("题", body, len, 60)
    assert "".join(p.split("\n", 1)[1] for p in out) == body
    assert all(len(p) <= 60 for p in out)
