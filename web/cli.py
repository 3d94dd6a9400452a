"""The ``techmatch`` command line, through Flask's click integration."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from matcher.models import Side


def _service():
    from web.extensions import matcher

    return matcher()


@click.group("db", help="数据库 / database")
def db_group():
    pass


@db_group.command("init")
@with_appcontext
def db_init():
    """Create the tables (idempotent)."""
    from matcher.db import init_db
    from web.extensions import engine

    init_db(engine())
    click.echo(f"数据库已就绪 / database ready: {_safe_url(current_app.config['DATABASE_URL'])}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@click.command("seed")
@click.option("--demo", is_flag=True, help="also create the four demo accounts (demo only)")
@with_appcontext
def seed(demo: bool):
    """Load the demo demands and achievements (skipped when records exist)."""
    import seeds
    from matcher.db import init_db
    from web.extensions import engine

    init_db(engine())
    counts = seeds.load_demo(_service(), progress=True)
    if counts["demands"]:
        click.echo(f"已导入 / loaded: {counts['organisations']} organisations, "
                   f"{counts['demands']} demands, {counts['achievements']} achievements")
    else:
        click.echo("已有数据, 跳过导入 / records exist, seeds skipped")
    if demo:
        made = seeds.create_demo_accounts(_service())
        if made:
            click.echo("演示账号 / demo accounts: " + ", ".join(made)
                       + f" (password: {seeds.DEMO_PASSWORD})")


@click.group("index", help="向量索引 / vector indexes")
def index_group():
    pass


@index_group.command("rebuild")
@click.option("--side", type=click.Choice([s.value for s in Side]), default=None)
@with_appcontext
def index_rebuild(side):
    """Rebuild indexes from the database (only stale vectors are re-encoded)."""
    counts = _service().rebuild(Side(side) if side else None)
    for name, n in counts.items():
        click.echo(f"{name}: {n} vectors")


@index_group.command("verify")
@with_appcontext
def index_verify():
    """Check the saved indexes against the database; rebuild what disagrees."""
    report = _service().verify()
    click.echo(json.dumps(report, ensure_ascii=False, indent=2))


@click.group("matches", help="已存储的匹配结果 / the stored match graph")
def matches_group():
    pass


@matches_group.command("verify")
@with_appcontext
def matches_verify():
    """Run pending jobs, then recompute every stored list that is missing or stale."""
    from datetime import timedelta

    svc = _service()
    svc.outbox.sweep(older_than=timedelta(0), run_here=True)
    report = svc.store.verify(progress=True)
    click.echo(json.dumps(report, ensure_ascii=False, indent=2))


@matches_group.command("rebuild")
@click.option("--side", type=click.Choice([s.value for s in Side]), default=None)
@with_appcontext
def matches_rebuild(side):
    """Recompute every stored match list (with a progress bar)."""
    report = _service().store.rebuild(Side(side) if side else None, progress=True)
    click.echo(json.dumps(report, ensure_ascii=False, indent=2))


@click.group("match", help="匹配 / matching")
def match_group():
    pass


def _print_results(results):
    if not results:
        click.echo("没有匹配结果 / no matches")
    for i, r in enumerate(results, 1):
        flag = "" if r.good else "  (弱匹配 / weak)"
        click.echo(f"{i:>2}. [{r.record.id}] {r.record.title}  score={r.score:.4f} "
                   f"strength={r.strength:.3f}{flag}")
        terms = r.explanation.get("shared_terms") or []
        if terms:
            click.echo("    共同关键词 / shared terms: " + ", ".join(terms))
        for c in r.explanation.get("checks", []):
            mark = {True: "+", False: "-", None: "?"}[c["passed"]]
            click.echo(f"    {mark} {c['detail_zh']} / {c['detail_en']}")


@match_group.command("demand")
@click.argument("demand_id", type=int)
@click.option("--k", default=10, show_default=True)
@with_appcontext
def match_demand(demand_id, k):
    """Best achievements for a demand."""
    _print_results(_service().match_demand(demand_id, k))


@match_group.command("achievement")
@click.argument("achievement_id", type=int)
@click.option("--k", default=10, show_default=True)
@with_appcontext
def match_achievement(achievement_id, k):
    """Best demands for an achievement."""
    _print_results(_service().match_achievement(achievement_id, k))


@click.group("model", help="嵌入模型 / embedding model")
def model_group():
    pass


@model_group.command("prepare")
@with_appcontext
def model_prepare():
    """Build (once) and load the configured embedding model and its backend's export."""
    svc = _service()
    enc = svc.encoder
    click.echo(f"模型 / model: {enc.model_id} -> {enc.resolve()} (dim {enc.dim})")
    click.echo(f"后端 / backend: {enc.backend.name}" + (f" -> {enc.export_folder()}" if enc.export_folder() else ""))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@with_appcontext
def serve(host, port, threads):
    """Serve the portal with a production WSGI server (waitress, several threads)."""
    from waitress import serve as waitress_serve

    app = current_app._get_current_object()
    click.echo(f"techmatch 门户 / portal: http://{host}:{port}/")
    waitress_serve(app, host=host, port=port, threads=threads, ident="techmatch")


@click.command("eval")
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--queries", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--qrels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--run", "run_out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--k", default=100, show_default=True)
@click.option("--judged-only", is_flag=True, help="match only the queries the qrels judge")
@click.option("--workspace", type=click.Path(file_okay=False, path_type=Path),
              help="keep the encoded corpus here and reuse it next time")
@click.option("--ablation", is_flag=True, help="print an ablation table (needs --qrels)")
@click.option("--check-store", is_flag=True,
              help="also store the queries as demands and compare the stored top 10 with the live ranker")
@with_appcontext
def eval_cmd(corpus, queries, qrels, run_out, k, judged_only, workspace, ablation, check_store):
    """Evaluate the matching pipeline on BEIR-format data; write a TREC run file."""
    from dataclasses import replace

    from matcher import evaluation as ev

    svc = _service()
    qrels_map = ev.read_qrels(qrels) if qrels else None
    qs = ev.read_queries(queries)
    if judged_only and qrels_map is not None:
        qs = [q for q in qs if q.qid in qrels_map]
    if ablation and qrels_map is None:
        raise click.UsageError("--ablation needs --qrels")
    with ev.workspace(corpus, svc.encoder, keep=workspace, settings=replace(svc.settings)) as (ws, ids):
        run = ev.run_queries(ws, ids, qs, k)
        ev.write_trec(run, run_out)
        click.echo(f"run file: {run_out} ({len(run)} queries)")
        if qrels_map is not None:
            m = ev.metrics(qrels_map, run)
            click.echo("  ".join(f"{name}={value:.4f}" for name, value in m.items()))
        if check_store:
            agreement = ev.store_agreement(ws, qs)
            click.echo(f"stored vs live top 10: {agreement['demands']} demands, same order "
                       f"{agreement['same_top']:.4f}, same set {agreement['same_set']:.4f}")
        if ablation:
            click.echo("\n| configuration | " + " | ".join(ev.METRIC_NAMES) + " |")
            click.echo("|---|" + "---|" * len(ev.METRIC_NAMES))
            for name, settings in ev.ablation_settings(svc.settings):
                ws.settings = settings
                m = ev.metrics(qrels_map, ev.run_queries(ws, ids, qs, k, progress=False))
                click.echo(f"| {name} | " + " | ".join(f"{m[n]:.4f}" for n in ev.METRIC_NAMES) + " |")


def register_commands(app: Flask) -> None:
    from web.worker_cli import worker

    for command in (db_group, seed, index_group, matches_group, match_group, model_group, serve, eval_cmd,
                    worker):
        app.cli.add_command(command)


def main() -> None:
    from web import create_app

    cli = FlaskGroup(create_app=create_app, add_default_commands=False,
                     help="techmatch: 产业出题, 科技答题 / matching technology demands and achievements")
    cli.main(args=sys.argv[1:], prog_name="techmatch")
