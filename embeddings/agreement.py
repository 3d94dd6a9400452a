"""Does a backend retrieve what torch fp32 retrieves?  The check behind ``EMBEDDING_BACKEND``.

    python -m embeddings.agreement [--backend onnx:int8 ...] [--pool N] [--eval-dir DIR]
                                   [--cache DIR] [--write]

Encodes two BEIR sets (``jishu51`` dev: its 60 judged demands against all 2,664
achievements; ``csl``: its first 1,000 queries against all 4,758 abstracts) with
torch fp32 and with each candidate backend, ranks the corpus by cosine (dense
retrieval alone, texts truncated to the model's 512 tokens) and reports per set:

- top-10 agreement: the overlap of the two top-10 lists of each query, averaged;
- nDCG@10 of both rankings (ir-measures), over the queries with a relevant document.

Every query is encoded with the ``passage`` prompt, as the portal matches a record
against records (``RankSettings.record_prompt``).  A backend *passes* when, on both
sets, agreement >= 0.95 and nDCG@10 is within 0.005 of torch fp32's.

``--pool N`` makes each corpus smaller where encoding everything would take too long
(a busy 2-core machine encodes ~200 tokens/s): the documents judged for the chosen
queries, then the others in file order, up to N documents (jishu51: its 736 judged
achievements and 264 more; csl: the 500 relevant abstracts and 500 more).  Encoded
vectors are cached per backend under ``--cache``, so a rerun only encodes what is new.
``--write`` records the table in ``embeddings/agreement.json``: the encoder reads it
to decide whether a backend's vectors may share torch fp32's model id.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_TOP10_AGREEMENT = 0.95
MAX_NDCG_DELTA = 0.005
TABLE = Path(__file__).with_name("agreement.json")
EVAL_DIR = Path("/work/shared/eval")
CACHE_DIR = Path("/work/cache/embed")


def recorded(model: str) -> dict[str, dict]:
    """The recorded agreement results of ``model``'s backends (empty if none)."""
    if not TABLE.exists():
        return {}
    return json.loads(TABLE.read_text(encoding="utf-8")).get(model, {})


def passed(model: str, backend: str) -> bool:
    """Whether ``backend`` is recorded as keeping ``model``'s torch fp32 rankings."""
    return bool(recorded(model).get(backend, {}).get("passes", False))


@dataclass(frozen=True)
class EvalSet:
    """A BEIR set and which of its queries the check uses."""

    name: str
    split: str
    max_queries: int | None  # None: every query judged in the split

    def load(self, root: Path, pool: int | None = None) -> tuple[
            list[str], list[str], list[str], list[str], dict[str, dict[str, int]]]:
        """Corpus ids and texts, query ids and texts, qrels (only the chosen queries).

        Args:
            root: the folder holding the sets.
            pool: keep only the judged documents, then others in file order, up to this many.
        """
        folder = root / self.name
        docs = [json.loads(line) for line in open(folder / "corpus.jsonl", encoding="utf-8")]
        qrels: dict[str, dict[str, int]] = {}
        with open(folder / "qrels" / f"{self.split}.tsv", encoding="utf-8") as fh:
            next(fh)
            for line in fh:
                qid, did, score = line.rstrip("\n").split("\t")[:3]
                qrels.setdefault(qid, {})[did] = int(score)
        queries = [json.loads(line) for line in open(folder / "queries.jsonl", encoding="utf-8")]
        queries = [q for q in queries if q["_id"] in qrels][: self.max_queries]
        chosen = {q["_id"] for q in queries}
        if pool:
            judged = {d for q in chosen for d in qrels[q]}
            docs = ([d for d in docs if d["_id"] in judged]
                    + [d for d in docs if d["_id"] not in judged])[: max(pool, len(judged))]
        return ([d["_id"] for d in docs], [_text(d) for d in docs],
                [q["_id"] for q in queries], [_text(q) for q in queries],
                {q: d for q, d in qrels.items() if q in chosen})


SETS = (EvalSet("jishu51", "dev", None), EvalSet("csl", "test", 1000))


def _text(record: dict) -> str:
    # the portal's one-passage form of a record: title, a newline, the body
    return f"{record.get('title') or ''}\n{record.get('text') or ''}".strip()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def encode_cached(encoder, texts: list[str], path: Path) -> np.ndarray:
    """Encode ``texts`` with the passage prompt, or read the vectors cached at ``path``."""
    meta = path.with_suffix(".json")
    digest = str(hash_texts(texts))
    if path.exists() and meta.exists() and json.loads(meta.read_text())["texts"] == digest:
        return np.load(path)
    started = time.perf_counter()
    vectors = encoder.encode(texts, "passage", progress=True)
    seconds = time.perf_counter() - started
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    meta.write_text(json.dumps({"texts": digest, "seconds": round(seconds, 1), "n": len(texts)}))
    return vectors


def hash_texts(texts: list[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def top_k(queries: np.ndarray, corpus: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` best corpus vectors of each query, best first."""
    scores = queries @ corpus.T
    idx = np.argpartition(-scores, k, axis=1)[:, :k]
    part = np.take_along_axis(scores, idx, axis=1)
    order = np.argsort(-part, axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(part, order, axis=1)


def agreement_at(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean overlap of two rankings' top-``k`` lists (rows are queries)."""
    return float(np.mean([len(set(x[:k]) & set(y[:k])) / k for x, y in zip(a, b, strict=True)]))


def ndcg10(qrels: dict[str, dict[str, int]], qids: list[str], doc_ids: list[str],
           idx: np.ndarray, scores: np.ndarray) -> float:
    """nDCG@10 (ir-measures, trec_eval) over the queries with a relevant document."""
    import ir_measures
    from ir_measures import nDCG

    judged = {q: d for q, d in qrels.items() if any(v > 0 for v in d.values())}
    run = {qid: {doc_ids[j]: float(s) for j, s in zip(row_i, row_s, strict=True)}
           for qid, row_i, row_s in zip(qids, idx, scores, strict=True) if qid in judged}
    return float(ir_measures.calc_aggregate([nDCG @ 10], judged, run)[nDCG @ 10])


def measure(model: str, backends: list[str], eval_dir: Path, cache: Path,
            cache_dir: Path | None = None, pool: int | None = None,
            sets: tuple[EvalSet, ...] = SETS) -> dict[str, dict]:
    """Agreement and nDCG@10 of each backend against torch fp32 on ``sets``.

    A backend passes only if it was measured on every set of ``SETS`` and passed each.
    """
    from embeddings.encoder import SentenceTransformerEncoder

    def encoder(backend: str):
        return SentenceTransformerEncoder(model, cache_dir=cache_dir, backend=backend)

    reference = encoder("torch")
    out: dict[str, dict] = {}
    for s in sets:
        doc_ids, docs, qids, queries, qrels = s.load(eval_dir, pool)
        base = cache / _slug(model)
        corpus_file = f"{s.name}-corpus{f'-pool{pool}' if pool else ''}.npy"
        ref_c = encode_cached(reference, docs, base / "torch" / corpus_file)
        ref_q = encode_cached(reference, queries, base / "torch" / f"{s.name}-queries.npy")
        ref_idx, ref_scores = top_k(ref_q, ref_c, 100)
        ref_ndcg = ndcg10(qrels, qids, doc_ids, ref_idx, ref_scores)
        for backend in backends:
            enc = encoder(backend)
            c = encode_cached(enc, docs, base / _slug(backend) / corpus_file)
            q = encode_cached(enc, queries, base / _slug(backend) / f"{s.name}-queries.npy")
            idx, scores = top_k(q, c, 100)
            nd = ndcg10(qrels, qids, doc_ids, idx, scores)
            out.setdefault(backend, {})[s.name] = {
                "queries": len(qids), "documents": len(doc_ids), "pool": pool,
                "top10_agreement": round(agreement_at(ref_idx, idx), 4),
                "ndcg10": round(nd, 4), "ndcg10_torch_fp32": round(ref_ndcg, 4),
                "ndcg10_delta": round(nd - ref_ndcg, 4),
                "min_cosine_to_torch": round(float(np.min(np.sum(c * ref_c, axis=1))), 4),
            }
    for result in out.values():
        result["passes"] = all(
            s.name in result
            and result[s.name]["top10_agreement"] >= MIN_TOP10_AGREEMENT
            and abs(result[s.name]["ndcg10_delta"]) <= MAX_NDCG_DELTA
            for s in SETS
        )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bundled:multilingual-e5-small")
    p.add_argument("--backend", action="append", help="candidate (repeat); default: every registered one")
    p.add_argument("--set", action="append", choices=[s.name for s in SETS],
                   help="only this set (repeat); a backend must pass both to pass")
    p.add_argument("--pool", type=int, help="smaller corpora: judged documents first, up to N")
    p.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    p.add_argument("--cache", type=Path, default=CACHE_DIR)
    p.add_argument("--write", action="store_true", help=f"record the results in {TABLE.name}")
    args = p.parse_args(argv)
    from embeddings.backends import available_backends

    backends = args.backend or [b for b in available_backends() if b != "torch"]
    sets = tuple(s for s in SETS if not args.set or s.name in args.set)
    results = measure(args.model, backends, args.eval_dir, args.cache, pool=args.pool, sets=sets)
    print("| backend | set | queries | documents | top-10 agreement | nDCG@10 | torch fp32 | delta "
          "| passes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for backend, result in results.items():
        for name, r in result.items():
            if isinstance(r, dict):
                print(f"| {backend} | {name} | {r['queries']} | {r['documents']} | "
                      f"{r['top10_agreement']:.4f} | "
                      f"{r['ndcg10']:.4f} | {r['ndcg10_torch_fp32']:.4f} | {r['ndcg10_delta']:+.4f} | "
                      f"{'yes' if result['passes'] else 'no'} |")
    if args.write:
        table = json.loads(TABLE.read_text()) if TABLE.exists() else {}
        table.setdefault(args.model, {}).update(results)
        TABLE.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"written: {TABLE}")


if __name__ == "__main__":
    main()
