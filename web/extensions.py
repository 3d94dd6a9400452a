"""The matcher service, registered on the app (database, encoder, indexes)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app

from matcher.db import make_engine, sqlite_url
from matcher.directory import Directory
from matcher.retrieval import RankSettings
from matcher.service import MatcherService


def init_app(app: Flask) -> None:
    """Create the engine and the service; nothing heavy is loaded until first use."""
    url = app.config["DATABASE_URL"] or sqlite_url(Path(app.instance_path))
    app.config["DATABASE_URL"] = url
    engine = make_engine(url)
    from embeddings import get_encoder

    cache = app.config.get("CACHE_DIR")
    encoder = get_encoder(app.config["EMBEDDING_MODEL"], Path(cache) if cache else None,
                          app.config["EMBEDDING_BACKEND"])
    settings = RankSettings(
        fusion=app.config["FUSION"],
        dense_weight=float(app.config["DENSE_WEIGHT"]),
        threshold=float(app.config["MATCH_THRESHOLD"]),
    )
    index_dir = Path(app.instance_path) / "index" / _slug(app.config["EMBEDDING_MODEL"])
    service = MatcherService(engine, encoder, index_dir, backend=app.config["INDEX_BACKEND"],
                             settings=settings)
    app.extensions["techmatch.engine"] = engine
    app.extensions["techmatch.matcher"] = service
    from web import worker_cli

    worker_cli.init_app(app)  # alerts for new records: queued on Redis, or run in-process


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[-80:]


def matcher() -> MatcherService:
    return current_app.extensions["techmatch.matcher"]


def engine():
    return current_app.extensions["techmatch.engine"]


def directory() -> Directory:
    """Organisations and users (the matcher's own directory service)."""
    return matcher().directory
