from django import forms
from django.contrib import admin

from training import base_models
from training.models import BaseModel, MetricPoint, TrainingJob


class BaseModelForm(forms.ModelForm):
    """A base model is checked when it is saved: a local folder must be a loadable model of a
    supported architecture (its size and context length are read from it); a Hub id is checked for
    form only, and the worker downloads it on first use."""

    class Meta:
        model = BaseModel
        fields = ["name", "source", "description", "architecture", "parameter_count", "context_length",
                  "chat_template", "licence", "methods", "enabled"]  # fmt: skip
        help_texts = {
            "source": "A Hugging Face id such as Qwen/Qwen2.5-0.5B-Instruct, or the full path of a model folder "
            "on the training server (starting with /).",
            "architecture": "Read from config.json for a local folder; for a Hugging Face id, its model_type.",
            "parameter_count": "Read from the weights for a local folder.",
            "context_length": "Read from config.json (max_position_embeddings) for a local folder.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("architecture", "parameter_count", "context_length"):
            self.fields[name].required = False
        self.inspection = None

    def clean(self):
        data = super().clean()
        if "source" not in data:
            return data  # already refused as a field error
        try:
            found = base_models.inspect(data["source"])
        except base_models.BaseModelError as exc:
            self.add_error(exc.field, str(exc))
            return data
        data["source"] = found.source
        if found.is_local:
            data.update(architecture=found.architecture, parameter_count=found.parameter_count,
                        context_length=found.context_length)  # fmt: skip
        else:
            data["architecture"] = (data.get("architecture") or "llama").strip()
            data["parameter_count"] = data.get("parameter_count") or 0
            data["context_length"] = data.get("context_length") or 2048
        self.inspection = found
        return data


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    form = BaseModelForm
    list_display = ("name", "source", "architecture", "parameter_count", "context_length", "builtin", "enabled")
    list_filter = ("architecture", "builtin", "enabled")
    search_fields = ("name", "source")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        found = form.inspection
        if found is not None and found.is_local:
            self.message_user(request, f"Checked the folder: {obj.architecture}, {obj.size_label} parameters, "
                                       f"{obj.context_length:,} tokens of context.")  # fmt: skip
        elif found is not None:
            self.message_user(request, found.note)


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "base_model", "status", "last_step", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "owner__username")
    readonly_fields = [f.name for f in TrainingJob._meta.fields]


@admin.register(MetricPoint)
class MetricPointAdmin(admin.ModelAdmin):
    list_display = ("job", "step", "train_loss", "eval_loss", "learning_rate", "tokens_per_second")
    readonly_fields = [f.name for f in MetricPoint._meta.fields]
