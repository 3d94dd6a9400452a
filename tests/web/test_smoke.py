def test_factory_and_health(app, world, client):
    assert client.get("/healthz").json == {"status": "ok"}
    svc = app.extensions["techmatch.matcher"]
    assert svc.index_dir.is_relative_to(app.instance_path)
    assert svc.match_demand(world.demand.id, k=1)[0].record.id == world.achievement.id


def test_secret_key_required_outside_debug(monkeypatch, tmp_path):
    import pytest

    from web import create_app

    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("TECHMATCH_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"INSTANCE_PATH": str(tmp_path), "DEMO_MODE": False})
