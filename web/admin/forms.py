"""Admin forms: organisations and users."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional, Regexp

from matcher.directory import PASSWORD_MIN
from matcher.models import OrgKind, Role
from web.main.filters import lang
from web.main.forms import no_control_characters

USERNAME = Regexp(r"^[A-Za-z0-9_.\-]+$", message=_l("只能包含字母、数字和 _ . -"))


class OrganisationForm(FlaskForm):
    name = StringField(_l("机构名称"), validators=[
        DataRequired(message=_l("此项为必填项")),
        Length(min=2, max=200, message=_l("长度应在 %(min)d 到 %(max)d 个字符之间")), no_control_characters],
        render_kw={"maxlength": 200})
    kind = SelectField(_l("机构类型"))
    region = StringField(_l("所在地区"), validators=[Optional(), Length(max=64, message=_l("最多 %(max)d 个字符")),
                                                   no_control_characters], render_kw={"maxlength": 64})
    description = TextAreaField(_l("机构简介"), validators=[
        Optional(), Length(max=4000, message=_l("最多 %(max)d 个字符")), no_control_characters],
        render_kw={"maxlength": 4000})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind.choices = OrgKind.choices(lang())


class _UserFields(FlaskForm):
    display_name = StringField(_l("显示名称"), validators=[
        Optional(), Length(max=100, message=_l("最多 %(max)d 个字符")), no_control_characters],
        render_kw={"maxlength": 100})
    role = SelectField(_l("角色"))
    organisation_id = SelectField(_l("所属机构"), coerce=int)

    def __init__(self, *args, organisations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = Role.choices(lang())
        self.organisation_id.choices = [(0, _l("无 (仅管理员)"))] + [
            (o.id, f"{o.name} · {OrgKind(o.kind).label(lang())}") for o in organisations]


class UserCreateForm(_UserFields):
    username = StringField(_l("用户名"), validators=[
        DataRequired(message=_l("此项为必填项")),
        Length(min=3, max=64, message=_l("长度应在 %(min)d 到 %(max)d 个字符之间")), USERNAME],
        render_kw={"maxlength": 64, "autocomplete": "off"})
    email = StringField(_l("电子邮箱"), validators=[
        Optional(), Length(max=200, message=_l("最多 %(max)d 个字符")),
        Email(message=_l("请输入有效的电子邮箱地址"))], render_kw={"maxlength": 200})
    password = PasswordField(_l("初始密码"), validators=[
        DataRequired(message=_l("此项为必填项")),
        Length(min=PASSWORD_MIN, max=256, message=_l("长度应在 %(min)d 到 %(max)d 个字符之间"))],
        render_kw={"autocomplete": "new-password"})


class UserEditForm(_UserFields):
    active = BooleanField(_l("账号启用"))
    password = PasswordField(_l("重置密码"), description=_l("留空则不修改"), validators=[
        Optional(), Length(min=PASSWORD_MIN, max=256, message=_l("长度应在 %(min)d 到 %(max)d 个字符之间"))],
        render_kw={"autocomplete": "new-password"})
