"""The command line on the real demo seeds (loaded once for the module), and seed quality."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlmodel import Session, select

import seeds
from matcher.models import Achievement, Demand, User

pytestmark = pytest.mark.slow


def test_seed_files_are_valid_and_large_enough():
    files = seeds.read_all()
    demands = [d for f in files for d in f["demands"]]
    achievements = [a for f in files for a in f["achievements"]]
    assert len(demands) >= 150 and len(achievements) >= 300
    chains = {d["industry_chain"] for d in demands} | {a["industry_chain"] for a in achievements}
    assert len(chains) >= 13
    english = sum(1 for r in demands + achievements if not re.search(r"[\u4e00-\u9fff]", r["title"]))
    assert 0.05 <= english / len(demands + achievements) <= 0.2, "about a tenth in English"
    numbers = [a["patent_number"] for a in achievements if a["kind"] == "patent"]
    assert numbers and all(n.startswith("CN-DEMO-") for n in numbers), "clearly fictional numbers"
    assert len(numbers) == len(set(numbers))


def test_seed_loads_everything_once(demo):
    app, runner = demo
    engine = app.extensions["techmatch.engine"]
    with Session(engine) as s:
        n_d = len(s.exec(select(Demand.id)).all())
        n_a = len(s.exec(select(Achievement.id)).all())
        users = {u.username: u for u in s.exec(select(User)).all()}
    files = seeds.read_all()
    assert n_d == sum(len(f["demands"]) for f in files)
    assert n_a == sum(len(f["achievements"]) for f in files)
    assert set(users) >= {"enterprise-demo", "institution-demo", "broker-demo", "admin-demo"}
    from werkzeug.security import check_password_hash

    assert check_password_hash(users["broker-demo"].password_hash, seeds.DEMO_PASSWORD)
    again = runner.invoke(args=["seed", "--demo"])
    assert "seeds skipped" in again.output
    with Session(engine) as s:
        assert len(s.exec(select(Demand.id)).all()) == n_d


def test_intended_pairs_rank_high(demo):
    """The seeds' own intended answers (seeds/expected_pairs.json) come out on top."""
    app, _ = demo
    svc = app.extensions["techmatch.matcher"]
    pairs = json.loads(Path(seeds.__file__).with_name("expected_pairs.json").read_text("utf-8"))
    with Session(svc.engine) as s:
        demand_ids = {d.title: d.id for d in s.exec(select(Demand)).all()}
        ach_ids = {a.title: a.id for a in s.exec(select(Achievement)).all()}
    wanted: dict[int, set[int]] = {}
    for p in pairs:
        wanted.setdefault(demand_ids[p["demand"]], set()).add(ach_ids[p["achievement"]])
    hit1 = hit3 = 0
    for did, answers in wanted.items():
        got = [r.record.id for r in svc.match_demand(did, k=3, explain=False,
                                                      filters=None)]
        hit1 += got[0] in answers
        hit3 += bool(answers & set(got))
    n = len(wanted)
    print(f"intended pairs: hit@1 {hit1}/{n}, hit@3 {hit3}/{n}")
    assert hit3 / n >= 0.85
    assert hit1 / n >= 0.7


def test_cli_match_and_index_commands(demo):
    app, runner = demo
    out = runner.invoke(args=["match", "demand", "1", "--k", "3"])
    assert out.exit_code == 0, out.output
    assert re.search(r"^ 1\. \[\d+\] .+ score=", out.output, re.M)
    assert "shared terms" in out.output
    out = runner.invoke(args=["match", "achievement", "1", "--k", "2"])
    assert out.exit_code == 0 and " 1. [" in out.output
    report = json.loads(runner.invoke(args=["index", "verify"]).output)
    for side in ("demand", "achievement"):
        assert report[side]["db_records"] == report[side]["index_records"] > 0
        assert not report[side]["rebuilt"]
    out = runner.invoke(args=["index", "rebuild", "--side", "demand"])
    assert out.exit_code == 0 and "demand:" in out.output
    missing = runner.invoke(args=["match", "demand", "999999"])
    assert missing.exit_code != 0


def test_good_match_threshold_separates_answered_demands(demo):
    """Demands the seeds answer mostly clear the threshold; most unanswered ones do not."""
    app, _ = demo
    svc = app.extensions["techmatch.matcher"]
    pairs = json.loads(Path(seeds.__file__).with_name("expected_pairs.json").read_text("utf-8"))
    answered = {p["demand"] for p in pairs}
    with Session(svc.engine) as s:
        demands = s.exec(select(Demand)).all()
    good = {True: [], False: []}
    for d in demands:
        top = svc.match_demand(d.id, k=1, explain=False)
        good[d.title in answered].append(bool(top and top[0].good))
    tpr = sum(good[True]) / len(good[True])
    fpr = sum(good[False]) / len(good[False])
    print(f"threshold: {tpr:.2f} of answered demands have a good match, {fpr:.2f} of unanswered")
    assert tpr >= 0.8
    assert fpr <= 0.6
    assert tpr - fpr >= 0.3


CORPUS = [
    ("d1", "锂云母提锂新工艺", "以硫酸盐焙烧-水浸从锂云母中提取锂, 锂回收率92%, 能耗降低30%。"),
    ("d2", "脐橙果汁护色技术", "超高压非热杀菌结合天然抗氧化剂, NFC橙汁冷藏60天不褐变。"),
    ("d3", "陶瓷釉面缺陷视觉检测", "基于深度学习的陶瓷釉面针孔、裂纹检测, 检出率99%。"),
    ("d4", "钢渣微粉制备技术", "钢渣经磁选和立磨粉磨制成微粉, 用作混凝土掺合料。"),
    ("d5", "Grain-boundary diffusion for NdFeB magnets",
     "Terbium diffusion raises the coercivity of sintered NdFeB magnets by 30 percent."),
    ("d6", "羽绒清洗节水工艺", "逆流漂洗与膜分离回用, 羽绒清洗吨耗水降低50%。"),
]
QUERIES = [("q1", "锂云母怎么高效提锂"), ("q2", "橙汁冷藏以后变褐色怎么办"),
           ("q3", "稀土永磁体矫顽力提升"), ("q4", "陶瓷表面缺陷自动检测")]
QRELS = [("q1", "d1", 2), ("q2", "d2", 2), ("q3", "d5", 1), ("q4", "d3", 2)]


def test_eval_command_writes_trec_run_and_metrics(tmp_path, encoder):
    from web import create_app

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"_id": i, "title": t, "text": x}, ensure_ascii=False)
                                for i, t, x in CORPUS), encoding="utf-8")
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps({"_id": i, "text": t}, ensure_ascii=False)
                                 for i, t in QUERIES), encoding="utf-8")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "\n".join(f"{q}\t{d}\t{s}" for q, d, s in QRELS))
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "INSTANCE_PATH": str(tmp_path / "inst"),
                      "CACHE_DIR": str(encoder.cache_dir)})
    run = tmp_path / "run.trec"
    out = app.test_cli_runner().invoke(args=[
        "eval", "--corpus", str(corpus), "--queries", str(queries), "--qrels", str(qrels),
        "--run", str(run), "--k", "5", "--ablation"])
    assert out.exit_code == 0, out.output
    lines = run.read_text().splitlines()
    assert len(lines) == 4 * 5
    qid, q0, docid, rank, score, tag = lines[0].split()
    assert (qid, q0, rank, tag) == ("q1", "Q0", "1", "techmatch") and docid == "d1"
    ndcg = float(re.search(r"nDCG@10=([0-9.]+)", out.output).group(1))
    assert ndcg >= 0.9
    assert "| dense only (first passage) |" in out.output and "| keyword (BM25) only |" in out.output
