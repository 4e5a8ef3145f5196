"""The training form: a preset for novices, every engine knob under Advanced."""

from __future__ import annotations

import dataclasses
import uuid

from django import forms

from datanets.access import trainable_by
from training import services
from training.engine.config import METHODS, PRECISIONS, PRESETS, SCHEDULERS, FinetuneConfig
from training.models import BaseModel

ADVANCED = [
    "method", "rank", "alpha", "dropout", "target_modules", "learning_rate", "scheduler", "warmup_ratio", "epochs",
    "max_steps", "batch_size", "grad_accum", "max_seq_len", "packing", "seed", "eval_fraction", "precision",
    "gradient_checkpointing", "logging_steps", "eval_steps", "save_steps",
]  # fmt: skip


class DatanetChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        v = obj.current_version
        return f"{obj.name} — v{v.number}, {v.size} records" if v else f"{obj.name} — no accepted records yet"


class TrainingForm(forms.Form):
    name = forms.CharField(max_length=120, required=False, help_text="Optional; shown in your jobs list.")
    base_model = forms.ModelChoiceField(queryset=BaseModel.objects.filter(enabled=True), empty_label=None)
    datanets = DatanetChoice(queryset=None, widget=forms.CheckboxSelectMultiple)
    preset = forms.ChoiceField(
        choices=[
            ("quick", "Quick — a first try in minutes"),
            ("balanced", "Balanced"),
            ("thorough", "Thorough"),
            ("custom", "Custom — only the Advanced values"),
        ],  # fmt: skip
        initial="quick",
        widget=forms.RadioSelect,
    )
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)
    method = forms.ChoiceField(choices=[(m, m.upper()) for m in METHODS], required=False)
    rank = forms.IntegerField(required=False, min_value=1, max_value=1024)
    alpha = forms.IntegerField(required=False, min_value=1, max_value=4096)
    dropout = forms.FloatField(required=False, min_value=0, max_value=0.99)
    target_modules = forms.CharField(required=False, help_text="Comma-separated; empty = per architecture.")
    learning_rate = forms.FloatField(required=False, min_value=1e-8, max_value=1)
    scheduler = forms.ChoiceField(choices=[("", "preset"), *[(s, s) for s in SCHEDULERS]], required=False)
    warmup_ratio = forms.FloatField(required=False, min_value=0, max_value=0.99)
    epochs = forms.FloatField(required=False, min_value=0.01, max_value=100)
    max_steps = forms.IntegerField(required=False, min_value=0, max_value=1_000_000, help_text="0 = use epochs")
    batch_size = forms.IntegerField(required=False, min_value=1, max_value=1024)
    grad_accum = forms.IntegerField(required=False, min_value=1, max_value=1024, label="Gradient accumulation")
    max_seq_len = forms.IntegerField(required=False, min_value=16, max_value=131072, label="Max sequence length")
    packing = forms.TypedChoiceField(
        choices=[("", "preset"), ("true", "padding-free packing"), ("false", "padded batches")], required=False,
        coerce=lambda v: v == "true", empty_value=None,
    )  # fmt: skip
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    eval_fraction = forms.FloatField(required=False, min_value=0, max_value=0.5)
    precision = forms.ChoiceField(choices=[("", "preset"), *[(p, p) for p in PRECISIONS]], required=False)
    gradient_checkpointing = forms.TypedChoiceField(
        choices=[("", "preset"), ("true", "on (saves memory)"), ("false", "off")], required=False,
        coerce=lambda v: v == "true", empty_value=None,
    )  # fmt: skip
    logging_steps = forms.IntegerField(required=False, min_value=1, max_value=10_000)
    eval_steps = forms.IntegerField(required=False, min_value=0)
    save_steps = forms.IntegerField(required=False, min_value=0)

    def __init__(self, user, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # Only Datanets this user may train on: a tampered post for another is "not a valid choice".
        self.fields["datanets"].queryset = trainable_by(user).order_by("name")
        if not self.is_bound:
            self.initial.setdefault("request_key", uuid.uuid4().hex)
        self.config = None
        # Show what an empty Advanced field means: the Quick preset over the engine's defaults.
        defaults = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)} | PRESETS["quick"]
        for name in ADVANCED:
            widget = self.fields[name].widget
            if isinstance(widget, forms.TextInput | forms.NumberInput) and defaults.get(name) is not None:
                widget.attrs["placeholder"] = str(defaults[name])

    def overrides(self) -> dict:
        data = self.cleaned_data
        values = {k: data.get(k) for k in ADVANCED if k != "target_modules"}
        if data.get("target_modules"):
            values["target_modules"] = [m.strip() for m in data["target_modules"].split(",") if m.strip()]
        return values

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            overrides = self.overrides()
            if data["datanets"]:
                overrides["schema"] = data["datanets"][0].schema
            self.config = services.config_from(data["preset"], overrides, data["base_model"])
            services.check_start(self.user, data["base_model"], list(data["datanets"]), self.config)
        except services.TrainingError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, str(exc))
        return data
