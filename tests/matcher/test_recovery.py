"""Crashes mid-write and model changes: the database stays whole, indexes follow it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlmodel import Session, select

from embeddings.encoder import SentenceTransformerEncoder
from matcher.db import init_db, make_engine, sqlite_url
from matcher.index import Manifest, manifest_path
from matcher.models import Achievement, Embedding, OrgKind, Side
from matcher.service import MatcherService
from tests.conftest import achievement_data, make_org

ROOT = Path(__file__).resolve().parents[2]

CRASH = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from embeddings import get_encoder
    from matcher.db import make_engine, sqlite_url
    from matcher.service import MatcherService
    from tests.conftest import achievement_data
    import matcher.index, sqlmodel

    where = sys.argv[1]
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    if where == "after-commit":
        matcher.index.FaissIndex.save = die          # DB committed, index not yet saved
    else:
        sqlmodel.Session.commit = die                # killed before the DB commit
    folder = Path(sys.argv[2])
    svc = MatcherService(make_engine(sqlite_url(folder)), get_encoder(), folder / "index")
    svc.state(matcher.models.Side.achievement)
    svc.create_achievement(data=achievement_data(int(sys.argv[3]), title="崩溃时写入的成果"))
    print("not killed")
""")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["after-commit", "before-commit"])
def test_process_killed_mid_write(tmp_path, encoder, where):
    engine = make_engine(sqlite_url(tmp_path))
    init_db(engine)
    uni = make_org(engine, kind=OrgKind.university)
    svc = MatcherService(engine, encoder, tmp_path / "index")
    svc.state(Side.achievement)
    first = svc.create_achievement(data=achievement_data(uni))
    assert not svc.verify()["achievement"]["rebuilt"], "the saved index follows each write"
    proc = subprocess.run([sys.executable, "-c", CRASH.format(root=str(ROOT)), where,
                           str(tmp_path), str(uni)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]

    fresh = MatcherService(engine, encoder, tmp_path / "index")
    report = fresh.verify()["achievement"]
    with Session(engine) as s:
        titles = set(s.exec(select(Achievement.title)).all())
    assert report["db_records"] == report["index_records"] == len(titles)
    if where == "after-commit":
        assert "崩溃时写入的成果" in titles
        assert report["rebuilt"], "the saved index was behind the database"
        hits = fresh.search("崩溃时写入的成果 铜合金", Side.achievement, k=2)
        assert any(h.record.title == "崩溃时写入的成果" for h in hits)
    else:
        assert titles == {first.title}, "nothing half-written"
    assert not fresh.verify()["achievement"]["rebuilt"], "after recovery the saved index is current"


@pytest.mark.slow
def test_model_change_reencodes_everything_and_never_mixes(tmp_path, encoder):
    engine = make_engine(sqlite_url(tmp_path))
    init_db(engine)
    uni = make_org(engine, kind=OrgKind.university)
    svc = MatcherService(engine, encoder, tmp_path / "index")
    for i in range(3):
        svc.create_achievement(data=achievement_data(uni, title=f"铜合金成果{i}"))
    # The same weights loaded from a local folder are another model id: vectors must be redone.
    other = SentenceTransformerEncoder(encoder.resolve(), cache_dir=encoder.cache_dir)
    assert other.model_id != encoder.model_id
    svc2 = MatcherService(engine, other, tmp_path / "index")
    report = svc2.verify()["achievement"]
    assert report["stale_vectors"] == 3 and report["rebuilt"]
    with Session(engine) as s:
        models = set(s.exec(select(Embedding.model_id)).all())
    assert models == {other.model_id}
    manifest = Manifest.read(manifest_path(tmp_path / "index" / "achievement.faiss"))
    assert manifest.model_id == other.model_id
    assert svc2.state(Side.achievement).vectors.ntotal == 3
    # and back: the first model re-encodes again rather than trusting the other's vectors
    assert MatcherService(engine, encoder, tmp_path / "index").verify()["achievement"]["stale_vectors"] == 3


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing-manifest"])
def test_damaged_index_file_is_rebuilt(tmp_path, encoder, damage):
    """A saved index damaged on disk is never trusted: the side is rebuilt from the database."""
    engine = make_engine(sqlite_url(tmp_path))
    init_db(engine)
    uni = make_org(engine, kind=OrgKind.university)
    svc = MatcherService(engine, encoder, tmp_path / "index")
    first = svc.create_achievement(data=achievement_data(uni))
    path = tmp_path / "index" / "achievement.faiss"
    assert path.exists()
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a faiss index" * 100)
    else:
        manifest_path(path).unlink()
    fresh = MatcherService(engine, encoder, tmp_path / "index")
    hits = fresh.search("高强高导铜合金", Side.achievement, k=1)  # the portal still answers
    assert [h.record.id for h in hits] == [first.id]
    report = fresh.verify()["achievement"]
    assert report["index_records"] == report["db_records"] == 1
    assert not fresh.verify()["achievement"]["rebuilt"], "after the rebuild the saved index is current"
