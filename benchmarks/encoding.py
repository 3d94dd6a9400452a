"""Encoding throughput of each embedding backend against plain sentence-transformers fp32.

    python -m benchmarks.encoding [--texts 128] [--rounds 2] [--backend onnx:int8 ...]

Texts: the demo seeds' demands and achievements of 100-400 characters (title and
description, as the portal encodes a record), ``passage`` prompt, batch 32.
Baseline: ``SentenceTransformer(folder).encode(...)`` on the same converted model, fp32,
nothing changed, measured in the same run.  Each engine runs ``--rounds`` times,
interleaved with the others so a change of load hits all of them; the best round counts.
Every backend's export is built (or found in the cache) before timing starts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def seed_texts(n: int, lo: int = 100, hi: int = 400) -> list[str]:
    """Up to ``n`` demo-seed records of ``lo``..``hi`` characters, in file order."""
    texts: list[str] = []
    for path in sorted((ROOT / "seeds" / "data").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for side in ("demands", "achievements"):
            for r in data.get(side, []):
                text = f"{r['title']}\n{r['description']}"
                if lo <= len(text) <= hi:
                    texts.append(text)
    return texts[:n]


def _row(cells: list[str]) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


def bench_encoding(n: int = 128, rounds: int = 2, backends: list[str] | None = None) -> dict:
    from sentence_transformers import SentenceTransformer

    from embeddings import DEFAULT_BACKEND, get_encoder
    from embeddings.backends import available_backends

    names = backends or available_backends()
    texts = seed_texts(n)
    encoders = {b: get_encoder(backend=b) for b in names}
    for enc in encoders.values():
        enc.encode(texts[:4], "passage")  # build or load the export, warm up
    plain = SentenceTransformer(encoders[names[0]].resolve(), device="cpu")
    plain.encode(texts[:4], prompt="passage: ")
    tokens = [len(plain.tokenizer("passage: " + t)["input_ids"]) for t in texts]

    runs = {"plain": lambda: plain.encode(texts, prompt="passage: ", batch_size=32,
                                          normalize_embeddings=True)}
    runs.update({b: (lambda e=e: e.encode(texts, "passage")) for b, e in encoders.items()})
    best: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            vectors[name] = fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
    base = len(texts) / best["plain"]
    print(f"\n## Encoding ({len(texts)} seed texts of {min(len(t) for t in texts)}-"
          f"{max(len(t) for t in texts)} characters, mean {np.mean(tokens):.0f} tokens, batch 32, "
          f"best of {rounds})\n")
    _row(["engine", "texts/s", "vs plain fp32", "min cosine to plain"])
    _row(["---"] * 4)
    _row(["sentence-transformers fp32, plain (baseline)", f"{base:.1f}", "1.00x", "1.0000"])
    out = {"texts": len(texts), "mean_tokens": float(np.mean(tokens)), "plain_texts_per_s": base,
           "backends": {}}
    for b in names:
        speed = len(texts) / best[b]
        cosine = float(np.min(np.sum(vectors[b] * vectors["plain"], axis=1)))
        label = f"techmatch `{b}`" + (" (default)" if b == DEFAULT_BACKEND else "")
        _row([label, f"{speed:.1f}", f"{speed / base:.2f}x", f"{cosine:.4f}"])
        out["backends"][b] = {"texts_per_s": speed, "ratio": speed / base, "min_cosine": cosine}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--backend", action="append", help="backend to time (repeat); default: all")
    args = p.parse_args(argv)
    bench_encoding(args.texts, args.rounds, args.backend)


if __name__ == "__main__":
    main()
