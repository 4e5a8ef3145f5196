from django.contrib import admin

from training.models import BaseModel, MetricPoint, TrainingJob


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "architecture", "parameter_count", "context_length", "builtin", "enabled")
    list_filter = ("architecture", "builtin", "enabled")
    search_fields = ("name", "source")


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
