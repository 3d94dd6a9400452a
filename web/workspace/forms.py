"""Forms of the broker workspace.

Labels and messages here are bilingual ``"中文 / English"`` texts, shown through
the ``bilingual`` filter (as the domain's messages are): the translation
catalogue is extracted from the templates and the other packages only.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, FloatField, HiddenField, IntegerField, SelectField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from matcher.models import TEXT_MAX, CallVerdict, CoopMode, FailureReason, MatchState
from web.main.filters import lang
from web.main.forms import no_control_characters

REQUIRED = "此项为必填项 / this field is required"
MONEY_MAX = 10_000_000


def _note(label: str = "说明 / Note", max_len: int = 4000):
    return TextAreaField(label, validators=[Optional(), Length(max=max_len, message=f"最多 {max_len} 个字符 / "
                                                                                      f"at most {max_len} characters"),
                                            no_control_characters], render_kw={"maxlength": max_len, "rows": 2})


class RecommendForm(FlaskForm):
    """A broker pairs a demand with an achievement."""

    demand_id = IntegerField("需求 / Demand", validators=[InputRequired(message=REQUIRED),
                                                         NumberRange(min=1, message=REQUIRED)])
    achievement_id = IntegerField("成果 / Achievement", validators=[InputRequired(message=REQUIRED),
                                                                   NumberRange(min=1, message=REQUIRED)])
    note = _note("推荐理由 / Why this pair")
    next = HiddenField()


class TransitionForm(FlaskForm):
    """A change of a match's state; which fields count depends on the target state."""

    state = SelectField("新状态 / New state", validators=[InputRequired(message=REQUIRED)])
    note = _note()
    amount_wan = FloatField("签约金额(万元) / Amount (10k CNY)", validators=[
        Optional(), NumberRange(min=0.01, max=MONEY_MAX, message=f"应在 0.01 到 {MONEY_MAX} 之间 / "
                                                                 f"must be between 0.01 and {MONEY_MAX}")])
    cooperation_mode = SelectField("合作方式 / Cooperation mode", validators=[Optional()])
    signed_on = DateField("签约日期 / Signing date", validators=[Optional()])
    reason = SelectField("失败原因 / Reason", validators=[Optional()])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = lang()
        self.state.choices = [(s.value, s.label(current)) for s in MatchState]
        self.cooperation_mode.choices = [("", "—")] + CoopMode.choices(current)
        self.reason.choices = [("", "—")] + FailureReason.choices(current)

    def update_data(self) -> dict:
        """The fields the target state uses, as ``MatchUpdate`` input."""
        data: dict = {"state": self.state.data, "note": self.note.data or ""}
        if self.state.data == MatchState.signed.value:
            data.update(amount_wan=self.amount_wan.data, cooperation_mode=self.cooperation_mode.data or None,
                        signed_on=self.signed_on.data)
        if self.state.data == MatchState.failed.value:
            data["reason"] = self.reason.data or None
        return data


class CallForm(FlaskForm):
    """An enterprise publishes its demand as an open call."""

    reward_wan = FloatField("悬赏金额(万元) / Reward (10k CNY)", validators=[
        InputRequired(message=REQUIRED),
        NumberRange(min=0.01, max=MONEY_MAX, message=f"应在 0.01 到 {MONEY_MAX} 之间 / "
                                                     f"must be between 0.01 and {MONEY_MAX}")])
    deadline = DateField("截止日期 / Deadline", validators=[InputRequired(message=REQUIRED)])


class SubmissionForm(FlaskForm):
    """An institution answers a call with one of its achievements."""

    achievement_id = SelectField("揭榜成果 / Achievement", coerce=int,
                                 validators=[InputRequired(message=REQUIRED)])
    proposal = TextAreaField("解决方案 / Proposal", validators=[
        DataRequired(message=REQUIRED),
        Length(min=10, max=TEXT_MAX, message=f"长度应在 10 到 {TEXT_MAX} 个字符之间 / "
                                             f"between 10 and {TEXT_MAX} characters"),
        no_control_characters], render_kw={"maxlength": TEXT_MAX, "rows": 4})


class GradeForm(FlaskForm):
    """The call owner grades one answer."""

    score = IntegerField("评分(0-100) / Score (0-100)", validators=[
        InputRequired(message=REQUIRED), NumberRange(min=0, max=100, message="应在 0 到 100 之间 / "
                                                                             "must be between 0 and 100")])
    verdict = SelectField("评审结论 / Verdict", validators=[InputRequired(message=REQUIRED)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.verdict.choices = CallVerdict.choices(lang())


class EmptyForm(FlaskForm):
    """Just the CSRF token (buttons such as "mark read")."""
