"""The training form: a preset for novices, every engine knob under Advanced."""

from __future__ import annotations

import uuid

from django import forms
from django.conf import settings
from django.core import validators

from datanets.access import trainable_by
from training import services
from training.engine.config import KNOBS, PRESETS, Knob
from training.models import BaseModel

ADVANCED = [k.name for k in KNOBS.values() if k.advanced]
# What an empty Advanced field means, shown as its placeholder: the Quick preset over the engine's defaults.
PLACEHOLDERS = {k.name: k.default for k in KNOBS.values()} | dict(PRESETS["quick"].values)


class _Above(validators.BaseValidator):
    message = "Ensure this value is greater than %(limit_value)s."
    code = "min_value"

    def compare(self, a, b):
        return a <= b


class _Below(validators.BaseValidator):
    message = "Ensure this value is less than %(limit_value)s."
    code = "max_value"

    def compare(self, a, b):
        return a >= b


def knob_field(knob: Knob) -> forms.Field:
    """The Advanced form field for a FinetuneConfig knob, from its metadata; empty = the preset's value."""
    common = {"required": False, "label": knob.label, "help_text": knob.help}
    if knob.kind is bool:
        choices = [("", "preset"), *[("true" if v else "false", label) for v, label in knob.choices]]
        return forms.TypedChoiceField(choices=choices, coerce=lambda v: v == "true", empty_value=None, **common)
    if knob.choices:
        return forms.ChoiceField(choices=[("", "preset"), *knob.choices], **common)
    if knob.kind is list:
        return forms.CharField(**{**common, "help_text": f"{knob.help} Comma-separated."})
    bounds = {
        "min_value": None if knob.min_exclusive else knob.min,
        "max_value": None if knob.max_exclusive else knob.max,
        "validators": [
            *([_Above(knob.min)] if knob.min_exclusive else []),
            *([_Below(knob.max)] if knob.max_exclusive else []),
        ],
    }
    field = (forms.IntegerField if knob.kind is int else forms.FloatField)(**bounds, **common)
    if PLACEHOLDERS.get(knob.name) is not None:
        field.widget.attrs["placeholder"] = str(PLACEHOLDERS[knob.name])
    return field


# Every Advanced knob as a declared form field, in FinetuneConfig's order.
KnobFields = type(forms.Form)(
    "KnobFields", (forms.Form,), {"__module__": __name__, **{name: knob_field(KNOBS[name]) for name in ADVANCED}}
)


class DatanetChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        v = obj.current_version
        return f"{obj.name} — v{v.number}, {v.size} records" if v else f"{obj.name} — no accepted records yet"


class BaseModelChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.choice_label


class TrainingForm(KnobFields):
    name = forms.CharField(max_length=120, required=False, help_text="Optional; shown in your jobs list.")
    base_model = BaseModelChoice(queryset=BaseModel.objects.filter(enabled=True), empty_label=None)
    datanets = DatanetChoice(queryset=None, widget=forms.CheckboxSelectMultiple)
    preset = forms.ChoiceField(
        choices=[(p.name, p.choice_label) for p in PRESETS.values()], initial="quick", widget=forms.RadioSelect
    )
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    field_order = ["name", "base_model", "datanets", "preset", "request_key", *ADVANCED]

    def __init__(self, user, *args, datanet: str | None = None, **kwargs):
        """`datanet`: the slug of a Datanet to preselect (from ?datanet=); ignored unless the user may train on it."""
        super().__init__(*args, **kwargs)
        self.user = user
        # Only Datanets this user may train on: a tampered post for another is "not a valid choice".
        self.fields["datanets"].queryset = trainable_by(user).order_by("name")
        # offered where a training host has several devices, and where jobs may span several hosts
        for name, most, words in (("processes", settings.TRAINING_DEVICES_PER_WORKER, "training hosts have"),
                                  ("hosts", settings.TRAINING_MAX_HOSTS, "trains on at most")):  # fmt: skip
            if most > 1:
                self.fields[name].max_value = most
                self.fields[name].widget.attrs["max"] = most
                self.fields[name].help_text += f" This installation's {words} {most}."
            else:
                del self.fields[name]
        if not self.is_bound:
            self.initial.setdefault("request_key", uuid.uuid4().hex)
            chosen = self.fields["datanets"].queryset.filter(slug=datanet).first() if datanet else None
            if chosen is not None:
                self.initial["datanets"] = [chosen.pk]
        self.config = None

    def overrides(self) -> dict:
        data = self.cleaned_data
        values = {k: data.get(k) for k in ADVANCED}
        for k in ADVANCED:
            if KNOBS[k].kind is list:  # comma-separated text
                values[k] = [m.strip() for m in values[k].split(",") if m.strip()] if values[k] else None
        return values

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            overrides = self.overrides()
            if data["datanets"]:
                overrides["schema"] = data["datanets"][0].schema
            self.config = services.config_from(data["preset"], overrides, data["base_model"], data["datanets"])
            services.check_start(self.user, data["base_model"], list(data["datanets"]), self.config)
        except services.TrainingError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, str(exc))
        return data
