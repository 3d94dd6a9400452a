"""Sign-in form."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    username = StringField(_l("用户名"), validators=[DataRequired(message=_l("请输入用户名")),
                                                    Length(max=64, message=_l("最多 %(max)d 个字符"))],
                           render_kw={"autocomplete": "username", "maxlength": 64})
    password = PasswordField(_l("密码"), validators=[DataRequired(message=_l("请输入密码")),
                                                    Length(max=256, message=_l("最多 %(max)d 个字符"))],
                             render_kw={"autocomplete": "current-password"})
    remember = BooleanField(_l("在此设备上保持登录"))
    next = HiddenField()


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST."""
