"""Forms of the record pages: demands, achievements, list filters, search.

WTForms checks what a form can (required, lengths, ranges, choices); the
domain models (``DemandCreate`` ...) then validate the whole record, and their
errors are put back on the fields they concern.
"""

from __future__ import annotations

import unicodedata

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from pydantic import ValidationError as PydanticError
from wtforms import (
    BooleanField,
    DateField,
    FloatField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from matcher.errors import field_errors
from matcher.models import (
    TEXT_MAX,
    TITLE_MAX,
    AchievementKind,
    AchievementStatus,
    CoopMode,
    DemandStatus,
    IndustryChain,
    Maturity,
    Side,
)
from web.main.filters import bilingual, lang

MONEY_MAX = 10_000_000
TRL_NAMES = [
    ("基本原理被发现", "basic principles observed"),
    ("形成技术概念", "technology concept formulated"),
    ("关键功能实验验证", "proof of concept"),
    ("实验室环境验证", "validated in the laboratory"),
    ("相关环境验证", "validated in a relevant environment"),
    ("相关环境演示", "demonstrated in a relevant environment"),
    ("真实环境样机演示", "prototype demonstrated in operation"),
    ("系统完成并验证", "system complete and qualified"),
    ("实际应用验证", "proven in operation"),
]
JIANGXI_CITIES = ["南昌市", "赣州市", "九江市", "景德镇市", "萍乡市", "新余市", "鹰潭市",
                  "宜春市", "上饶市", "吉安市", "抚州市"]


def trl_choices() -> list[tuple[int, str]]:
    i = 1 if lang() == "en" else 0
    return [(n, f"TRL {n} · {TRL_NAMES[n - 1][i]}") for n in range(1, 10)]


def no_control_characters(form, field) -> None:
    """Refuse control characters (NUL and friends), keeping tabs and line breaks."""
    values = field.data if isinstance(field.data, list) else [field.data]
    for value in values:
        if isinstance(value, str) and any(
                unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in value):
            raise ValidationError(_l("包含不允许的控制字符"))


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _text(label, max_len: int, *, required: bool = False, min_len: int = 0, area: bool = False,
          description=None, extra=()):
    length = Length(min=min_len, max=max_len, message=_l("长度应在 %(min)d 到 %(max)d 个字符之间")
                    if min_len else _l("最多 %(max)d 个字符"))
    validators = [DataRequired(message=_l("此项为必填项")) if required else Optional(),
                  length, no_control_characters, *extra]
    field = TextAreaField if area else StringField
    return field(label, validators=validators, description=description,
                 render_kw={"maxlength": max_len})


def _money(label):
    return FloatField(label, validators=[
        Optional(), NumberRange(min=0, max=MONEY_MAX, message=_l("应在 %(min)s 到 %(max)s 之间"))],
        description=_l("单位: 万元; 留空表示面议"))


class RecordForm(FlaskForm):
    """Fields both sides share."""

    side: Side
    organisation_id = SelectField(_l("所属机构"), coerce=int,
                                  validators=[InputRequired(message=_l("请选择机构"))])
    title = _text(_l("标题"), TITLE_MAX, required=True, min_len=2)
    description = _text(_l("详细描述"), TEXT_MAX, required=True, min_len=10, area=True)
    industry_chain = SelectField(_l("产业链"), validators=[InputRequired(message=_l("请选择产业链"))])
    technical_field = _text(_l("技术领域"), 100, description=_l("例如: 铜加工、锂电池材料"))
    region = _text(_l("所在地区"), 64, description=_l("例如: 南昌市"))

    def __init__(self, *args, organisations=None, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        current = lang()
        self.industry_chain.choices = [("", _l("请选择"))] + IndustryChain.choices(current)
        if organisations is None:
            del self.organisation_id
        else:
            self.organisation_id.choices = [(o.id, o.name) for o in organisations]
        if not editing:
            del self.status
        self.set_choices(current)

    def set_choices(self, current: str) -> None:
        raise NotImplementedError

    def record_data(self) -> dict:
        """The form's values as the domain model's fields."""
        return {name: field.data for name, field in self._fields.items()
                if name not in ("csrf_token", "submit")}

    def domain_errors(self, errors: dict[str, str]) -> None:
        apply_errors(self, errors)

    def validate_model(self, model, **extra):
        """``model`` built from the form (None, with field errors, if the domain refuses it)."""
        try:
            return model.model_validate({**self.record_data(), **extra})
        except PydanticError as exc:
            self.domain_errors(field_errors(exc))
            return None


class DemandForm(RecordForm):
    side = Side.demand
    budget_wan = _money(_l("预算"))
    deadline = DateField(_l("截止日期"), validators=[Optional()])
    cooperation_modes = MultiCheckboxField(_l("期望合作方式"))
    required_trl = SelectField(_l("所需技术成熟度 (最低)"), coerce=int, default=1)
    status = SelectField(_l("状态"))
    confidential = BooleanField(_l("保密需求 (仅本机构与技术经纪人可见)"))
    contact_name = _text(_l("联系人"), 64)
    contact_phone = _text(_l("联系电话"), 32, extra=[Regexp(r"^[0-9+()\- ]*$",
                                                           message=_l("只能包含数字、空格和 + - ( )"))])
    contact_email = _text(_l("电子邮箱"), 200, extra=[Email(message=_l("请输入有效的电子邮箱地址"))])

    def set_choices(self, current: str) -> None:
        self.cooperation_modes.choices = CoopMode.choices(current)
        self.required_trl.choices = trl_choices()
        if getattr(self, "status", None) is not None:
            self.status.choices = DemandStatus.choices(current)

    def record_data(self) -> dict:
        data = super().record_data()
        for key in ("technical_field", "region", "contact_name", "contact_phone", "contact_email"):
            data[key] = data.get(key) or ""
        return data


class AchievementForm(RecordForm):
    side = Side.achievement
    kind = SelectField(_l("成果类型"), validators=[InputRequired(message=_l("请选择成果类型"))])
    patent_number = _text(_l("专利号"), 64, description=_l("仅专利类成果填写"))
    ipc_codes = _text(_l("IPC 分类号"), 700, description=_l("多个分类号用逗号分隔, 最多 20 个"))
    trl = SelectField(_l("技术成熟度"), coerce=int, default=1)
    maturity = SelectField(_l("成熟阶段"))
    transfer_modes = MultiCheckboxField(_l("可接受的转化方式"))
    asking_price_wan = _money(_l("转让报价"))
    team = _text(_l("研发团队"), 200)
    filing_date = DateField(_l("申请日"), validators=[Optional()], description=_l("专利填写"))
    publication_date = DateField(_l("公开日"), validators=[Optional()], description=_l("专利填写"))
    status = SelectField(_l("状态"))

    def set_choices(self, current: str) -> None:
        self.kind.choices = AchievementKind.choices(current)
        self.trl.choices = trl_choices()
        self.maturity.choices = Maturity.choices(current)
        self.transfer_modes.choices = CoopMode.choices(current)
        if getattr(self, "status", None) is not None:
            self.status.choices = AchievementStatus.choices(current)

    def process_record(self, record) -> None:
        """Fill an edit form from a stored record (the IPC list becomes one text)."""
        self.ipc_codes.data = ", ".join(record.ipc_codes or [])

    def record_data(self) -> dict:
        data = super().record_data()
        raw = (data.get("ipc_codes") or "").replace("，", ",").replace(";", ",").replace("；", ",")
        data["ipc_codes"] = [c.strip() for c in raw.split(",") if c.strip()]
        for key in ("technical_field", "region", "team"):
            data[key] = data.get(key) or ""
        if data.get("kind") != AchievementKind.patent.value:
            data["patent_number"] = None  # only patents have one
        data["patent_number"] = data.get("patent_number") or None
        return data


FORMS: dict[Side, type[RecordForm]] = {Side.demand: DemandForm, Side.achievement: AchievementForm}


# --- lists and search -------------------------------------------------------------------

class FilterForm(FlaskForm):
    """The list filters (GET; values outside the choices are ignored, never an error page)."""

    class Meta:
        csrf = False

    industry_chain = SelectField(_l("产业链"), validate_choice=False)
    region = StringField(_l("地区"), validators=[Length(max=64)])
    min_trl = SelectField(_l("最低技术成熟度"), validate_choice=False)
    cooperation_mode = SelectField(_l("合作方式"), validate_choice=False)
    status = SelectField(_l("状态"), validate_choice=False)
    mine = BooleanField(_l("只看本机构"))

    def __init__(self, side: Side, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = lang()
        anything = [("", _l("不限"))]
        self.industry_chain.choices = anything + IndustryChain.choices(current)
        self.min_trl.choices = anything + [(str(n), f"TRL {n}+") for n in range(1, 10)]
        self.cooperation_mode.choices = anything + CoopMode.choices(current)
        statuses = DemandStatus if side is Side.demand else AchievementStatus
        self.status.choices = anything + statuses.choices(current)

    def cleaned(self) -> dict:
        """The filters with unknown values dropped."""
        out = {}
        for name in ("industry_chain", "cooperation_mode", "status", "min_trl"):
            field = self._fields[name]
            if field.data and field.data in {str(v) for v, _ in field.choices}:
                out[name] = int(field.data) if name == "min_trl" else field.data
        region = (self.region.data or "").strip()
        if region and len(region) <= 64:
            out["region"] = region
        return out


class SearchForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("关键词或技术描述"), validators=[
        DataRequired(message=_l("请输入检索内容")), Length(max=500, message=_l("最多 %(max)d 个字符")),
        no_control_characters])
    side = SelectField(_l("范围"), default="all", validate_choice=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.side.choices = [("all", _l("全部")), ("demands", _l("技术需求")),
                             ("achievements", _l("科技成果"))]

    def sides(self) -> list[Side]:
        return {"demands": [Side.demand], "achievements": [Side.achievement]}.get(
            self.side.data, [Side.demand, Side.achievement])


# --- domain errors in words ---------------------------------------------------------------

def apply_errors(form, errors: dict[str, str]) -> None:
    """Put the domain's ``{field: message}`` onto the form's fields (others onto the form)."""
    for name, message in errors.items():
        field = form._fields.get(name.split(".")[0])
        if field is not None:
            field.errors = [*field.errors, bilingual(message)]
        else:
            form.form_errors.append(bilingual(message))
