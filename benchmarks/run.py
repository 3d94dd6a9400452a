"""techmatch benchmarks.

    python -m benchmarks.run [--sizes 10000,100000,1000000] [--rank-size 100000] [--skip-portal]

Prints, each beside a baseline measured in the same run:
- encoding throughput of each embedding backend vs plain sentence-transformers fp32
  (``benchmarks/encoding.py``);
- vector index build time, query latency p50/p95 and resident memory at each size
  (FAISS flat inner product vs brute-force numpy, synthetic unit vectors);
- hybrid ranking of one demand against N achievements (query encoding included)
  vs dense-only ranking of the same service;
- the portal process's resident memory with the model loaded (vs the same process before loading).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
ROOT = Path(__file__).resolve().parent.parent

TEXTS = [
    "高强高导铜合金带材形变热处理工艺, 抗拉强度600MPa以上, 导电率不低于65%IACS, 用于引线框架。",
    "锂云母提锂渣资源化利用: 年产锂渣40万吨, 含铝硅及残余钾铷, 寻求制备建材或提取铷铯的技术。",
    "NFC橙汁冷藏60天后褐变明显, 色差ΔE大于5, 维生素C损失约35%, 寻求非热杀菌与护色工艺。",
    "Non-thermal preservation of orange juice with high-pressure processing and natural antioxidants.",
    "烧结钕铁硼晶界扩散镝铽工艺, 矫顽力提升30%且重稀土用量降低60%, 已完成中试。",
    "数控机床主轴热误差建模与在线补偿, 加工精度提高40%, 适用于五轴加工中心。",
    "陶瓷釉面缺陷机器视觉检测系统, 检出率99.2%, 单件检测时间小于0.8秒。",
    "Grain-boundary diffusion of terbium in sintered NdFeB magnets reduces heavy rare earth use.",
]


def rss_mb(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def row(cells: list[str]) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


# --- vector index ---------------------------------------------------------------------

def _unit(rng, n: int) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        x = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start : start + len(x)] = x
    return out


def _child_index(kind: str, n: int, queries: int, k: int) -> dict:
    """Run in a fresh process so resident memory is the structure's own."""
    rng = np.random.default_rng(42)
    before = rss_mb()
    data = _unit(rng, n)
    q = _unit(rng, queries)
    t = time.perf_counter()
    if kind == "faiss":
        from matcher.index import CHUNK_SLOTS, FaissIndex

        idx = FaissIndex(DIM)
        idx.add(np.arange(n, dtype=np.int64) * CHUNK_SLOTS, data)
        del data
        gc.collect()
        build = time.perf_counter() - t
        search = lambda v: idx.search(v, k)  # noqa: E731
    else:
        matrix = data.copy()  # the baseline keeps its own copy, as an index would
        del data
        gc.collect()
        build = time.perf_counter() - t

        def search(v):
            scores = matrix @ v
            top = np.argpartition(-scores, k)[:k]
            return top[np.argsort(-scores[top])]
    search(q[0])
    lat = []
    for v in q:
        t = time.perf_counter()
        search(v)
        lat.append((time.perf_counter() - t) * 1000)
    return {"build_s": build, "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95),
            "rss_total_mb": rss_mb(), "base_mb": before}


def bench_index(sizes: list[int], queries: int = 50, k: int = 10) -> dict:
    print("\n## Vector index (synthetic unit vectors, 384 dims, k=10)\n")
    row(["vectors", "structure", "build s", "query p50 ms", "query p95 ms", "resident MB",
         "p50 vs numpy"])
    row(["---"] * 7)
    out = {}
    for n in sizes:
        res = {}
        for kind in ("numpy", "faiss"):
            code = (f"import json,sys; sys.path.insert(0, {str(ROOT)!r}); "
                    "from benchmarks.run import _child_index; "
                    f"print(json.dumps(_child_index({kind!r}, {n}, {queries}, {k})))")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            res[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
            res[kind]["rss_mb"] = res[kind]["rss_total_mb"] - res[kind]["base_mb"]
        for kind in ("numpy", "faiss"):
            r = res[kind]
            row([f"{n:,}", "FAISS IndexFlatIP" if kind == "faiss" else "numpy brute force (baseline)",
                 f"{r['build_s']:.3f}", f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['rss_mb']:.0f}",
                 f"{r['p50_ms'] / res['numpy']['p50_ms']:.2f}x"])
        out[n] = res
    return out


# --- hybrid ranking at scale ------------------------------------------------------------

def bench_rank(n: int, queries: int = 30) -> dict:
    """One demand ranked against ``n`` achievements through MatcherService.rank."""
    from sqlalchemy import insert
    from sqlmodel import Session

    from embeddings import get_encoder
    from matcher.db import init_db, make_engine, sqlite_url
    from matcher.models import Achievement, Embedding, Organisation, Side
    from matcher.service import MatcherService, RankSettings, text_hash

    enc = get_encoder()
    rng = np.random.default_rng(7)
    words = ["铜合金", "带材", "强度", "导电率", "稀土", "永磁", "晶界扩散", "锂云母", "提锂", "碳酸锂",
             "光伏", "组件", "陶瓷", "釉面", "缺陷", "检测", "机器视觉", "数控机床", "热误差", "补偿",
             "脐橙", "果汁", "褐变", "保鲜", "钢渣", "微粉", "羽绒", "印染", "废水", "中药", "饮片",
             "实木", "家具", "涂料", "无人机", "复合材料", "碳纤维", "轴承", "液压", "电池", "隔膜"]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(sqlite_url(Path(tmp)))
        init_db(engine)
        with Session(engine) as s:
            org = Organisation(name="基准测试机构", kind="university")
            s.add(org)
            s.commit()
            org_id = org.id
        t = time.perf_counter()
        vecs = _unit(rng, n)
        rows, emb = [], []
        for i in range(n):
            title = "".join(rng.choice(words, 3)) + f"技术{i}"
            body = "，".join("".join(rng.choice(words, 4)) for _ in range(6)) + "。"
            rows.append({"id": i + 1, "organisation_id": org_id, "title": title, "description": body,
                         "industry_chain": "frontier", "kind": "technology", "trl": int(rng.integers(1, 10)),
                         "maturity": "lab", "status": "available", "technical_field": "", "region": "南昌市",
                         "team": "", "ipc_codes": [], "transfer_modes": ["licence"]})
            emb.append({"side": "achievement", "record_id": i + 1, "chunk": 0, "model_id": enc.model_id,
                        "text_hash": text_hash(title, body), "vector": vecs[i].tobytes()})
        with engine.begin() as conn:
            for start in range(0, n, 20_000):
                conn.execute(insert(Achievement), rows[start : start + 20_000])
                conn.execute(insert(Embedding), emb[start : start + 20_000])
        del rows, emb, vecs
        svc = MatcherService(engine, enc, None, settings=RankSettings())
        svc.state(Side.achievement)
        setup = time.perf_counter() - t
        texts = [TEXTS[i % len(TEXTS)] + f" 需求{i}" for i in range(queries)]

        def timed(settings: RankSettings) -> list[float]:
            svc.settings = settings
            svc._query_cache.clear()
            svc.rank(title="预热", body=TEXTS[0], target=Side.achievement, k=10, explain=False)
            lat = []
            for text in texts:
                svc._query_cache.clear()  # query encoding included in every measurement
                t0 = time.perf_counter()
                svc.rank(title="", body=text, target=Side.achievement, k=10, explain=False)
                lat.append((time.perf_counter() - t0) * 1000)
            return lat

        hybrid = timed(RankSettings())
        dense = timed(RankSettings(use_keyword=False, compatibility=False))
        engine.dispose()
    print(f"\n## Ranking one demand against {n:,} achievements (query encoding included, k=10)\n")
    row(["pipeline", "p50 ms", "p95 ms", "p50 vs dense-only"])
    row(["---"] * 4)
    row(["hybrid (dense + BM25 + compatibility)", f"{pct(hybrid, 50):.1f}", f"{pct(hybrid, 95):.1f}",
         f"{pct(hybrid, 50) / pct(dense, 50):.2f}x"])
    row(["dense only (baseline)", f"{pct(dense, 50):.1f}", f"{pct(dense, 95):.1f}", "1.00x"])
    print(f"\n(set-up of {n:,} synthetic achievements: {setup:.0f} s)")
    return {"n": n, "hybrid_p50_ms": pct(hybrid, 50), "hybrid_p95_ms": pct(hybrid, 95),
            "dense_p50_ms": pct(dense, 50), "dense_p95_ms": pct(dense, 95)}


# --- portal memory -------------------------------------------------------------------------

PORTAL = """
import json, sys
sys.path.insert(0, %r)
from benchmarks.run import rss_mb
before = rss_mb()
from web import create_app
app = create_app({"TESTING": True, "SECRET_KEY": "bench", "INSTANCE_PATH": %r})
after_app = rss_mb()
app.extensions["techmatch.matcher"].encoder.encode(["预热"], "query")
print(json.dumps({"python": before, "app": after_app, "model": rss_mb()}))
"""


def bench_portal() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", PORTAL % (str(ROOT), tmp)], capture_output=True,
                              text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print("\n## Portal process resident memory\n")
    row(["state", "resident MB", "vs app without model"])
    row(["---"] * 3)
    row(["interpreter only", f"{r['python']:.0f}", ""])
    row(["app created, model not loaded (baseline)", f"{r['app']:.0f}", "1.00x"])
    row(["app with the model loaded", f"{r['model']:.0f}", f"{r['model'] / r['app']:.2f}x"])
    return r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--rank-size", type=int, default=100_000)
    p.add_argument("--skip-portal", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = {"machine": {"cpus": os.cpu_count()}}
    from benchmarks.encoding import bench_encoding

    results["encode"] = bench_encoding()
    results["index"] = bench_index([int(s) for s in args.sizes.split(",") if s])
    if args.rank_size:
        results["rank"] = bench_rank(args.rank_size)
    if not args.skip_portal:
        results["portal"] = bench_portal()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
