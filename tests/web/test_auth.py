"""Sign-in, sign-out and the admin area (organisations, users, roles)."""

from __future__ import annotations

from sqlmodel import Session, select

from matcher.models import Organisation, User
from tests.web.conftest import PASSWORD, login


def text(response) -> str:
    return response.get_data(as_text=True)


def user(app, username: str) -> User | None:
    with Session(app.extensions["techmatch.engine"]) as s:
        return s.exec(select(User).where(User.username == username)).first()


def test_login_page_is_chinese_and_has_no_demo_hint_by_default(client):
    page = text(client.get("/auth/login"))
    assert "用户登录" in page and 'name="username"' in page and 'type="password"' in page
    assert "演示账号" not in page


def test_demo_mode_lists_the_demo_accounts(app, client):
    app.config["DEMO_MODE"] = True
    page = text(client.get("/auth/login"))
    assert "演示账号" in page and "demo-pass-2026" in page
    for name in ("enterprise-demo", "institution-demo", "broker-demo", "admin-demo"):
        assert name in page
    assert "Demo accounts" in text(client.get("/auth/login?lang=en"))


def test_sign_in_and_out(client, world):
    response = login(client, "ent")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = text(client.get("/"))
    assert "欢迎, ent" in page and "企业用户" in page and "发布需求" in page and "发布成果" not in page
    assert client.get("/auth/login").status_code == 302  # already signed in
    confirm = client.get("/auth/logout")
    assert confirm.status_code == 200 and "确定要退出" in text(confirm)
    response = client.post("/auth/logout")
    assert response.status_code == 302
    assert "您已退出登录" in text(client.get("/"))
    assert client.get("/demands/new").status_code == 302


def test_wrong_password_unknown_user_and_inactive_user(app, client, world):
    response = login(client, "ent", "not-the-password")
    assert response.status_code == 401 and "用户名或密码错误" in text(response)
    response = login(client, "nobody", PASSWORD)
    assert response.status_code == 401 and "用户名或密码错误" in text(response)
    response = client.post("/auth/login", data={"username": "", "password": ""})
    assert response.status_code == 400 and "请输入用户名" in text(response)
    with Session(app.extensions["techmatch.engine"]) as s:
        row = s.exec(select(User).where(User.username == "rival")).one()
        row.active = False
        s.add(row)
        s.commit()
    assert login(client, "rival").status_code == 401


def test_login_returns_to_a_local_next_only(client, world):
    response = client.get("/demands/new")
    assert response.status_code == 302 and "/auth/login?next=" in response.headers["Location"]
    assert "请先登录" in text(client.get(response.headers["Location"]))
    response = client.post("/auth/login", data={"username": "ent", "password": PASSWORD, "next": "/demands/new"})
    assert response.headers["Location"] == "/demands/new"
    client.post("/auth/logout")
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post("/auth/login", data={"username": "ent", "password": PASSWORD, "next": evil})
        assert response.headers["Location"] == "/", evil
        client.post("/auth/logout")


# --- admin area -----------------------------------------------------------------------------------

def test_admin_lists_and_creates_organisations(app, client, world):
    login(client, "admin")
    page = text(client.get("/admin/organisations"))
    assert "赣鹰铜材(测试)" in page and "技术转移中心" in page
    response = client.post("/admin/organisations", data={
        "name": "赣南稀土研究院", "kind": "institute", "region": "赣州市", "description": "稀土分离与永磁材料"})
    assert response.status_code == 302
    assert "已创建机构: 赣南稀土研究院" in text(client.get("/admin/organisations"))
    # a taken name, a too-long name, an unknown kind: refused on the field, nothing written
    for data, message in [({"name": "赣南稀土研究院", "kind": "institute"}, "机构名称已存在"),
                          ({"name": "名" * 201, "kind": "enterprise"}, "长度应在 2 到 200 个字符之间"),
                          ({"name": "新机构", "kind": "bogus"}, "")]:
        response = client.post("/admin/organisations", data=data)
        assert response.status_code == 422 and message in text(response)
    with Session(app.extensions["techmatch.engine"]) as s:
        assert len(s.exec(select(Organisation)).all()) == 5


def test_admin_creates_users_and_changes_roles(app, client, world):
    login(client, "admin")
    page = text(client.get("/admin/users"))
    assert "broker" in page and "技术经纪人" in page
    response = client.post("/admin/users", data={
        "username": "new-ent", "display_name": "新企业用户", "email": "n@example.com", "role": "enterprise",
        "organisation_id": str(world.rival), "password": "long-enough-1"})
    assert response.status_code == 302
    created = user(app, "new-ent")
    assert created.role == "enterprise" and created.organisation_id == world.rival
    assert created.password_hash != "long-enough-1"
    # refused: taken name, role without a fitting organisation, short password, odd characters
    for data, message in [
        ({"username": "new-ent", "role": "enterprise", "organisation_id": str(world.rival)}, "用户名已被使用"),
        ({"username": "x-inst", "role": "institution", "organisation_id": str(world.ent)}, "该角色只能归属于"),
        ({"username": "x-broker", "role": "broker", "organisation_id": "0"}, "该角色必须归属一个机构"),
        ({"username": "x-short", "role": "admin", "organisation_id": "0", "password": "short"}, "长度应在 8"),
        ({"username": "<script>", "role": "admin", "organisation_id": "0"}, "只能包含字母"),
    ]:
        response = client.post("/admin/users", data={"password": "long-enough-1", **data})
        assert response.status_code == 422 and message in text(response), data
    assert user(app, "x-inst") is None and user(app, "x-broker") is None
    # change a role and organisation, deactivate, reset the password
    response = client.post(f"/admin/users/{created.id}", data={
        "display_name": "改为院所用户", "role": "institution", "organisation_id": str(world.uni),
        "active": "y", "password": "another-pass-2"})
    assert response.status_code == 302
    changed = user(app, "new-ent")
    assert changed.role == "institution" and changed.organisation_id == world.uni
    other = app.test_client()
    assert login(other, "new-ent", "another-pass-2").status_code == 302
    assert other.get("/achievements/new").status_code == 200
    client.post(f"/admin/users/{created.id}", data={"display_name": "", "role": "institution",
                                                    "organisation_id": str(world.uni)})
    assert user(app, "new-ent").active is False
    assert login(app.test_client(), "new-ent", "another-pass-2").status_code == 401


def test_admin_cannot_lock_themselves_out(app, client, world):
    login(client, "admin")
    admin = user(app, "admin")
    page = text(client.get(f"/admin/users/{admin.id}"))
    assert 'name="role"' in page
    response = client.post(f"/admin/users/{admin.id}", data={"role": "broker", "organisation_id": str(world.centre),
                                                            "active": "y"})
    assert response.status_code == 422 and "不能取消自己的管理员权限" in text(response)
    assert user(app, "admin").role == "admin"
    assert client.get("/admin/users/99999").status_code == 404
