"""FinetuneConfig's metadata is the single source of the knobs: the form, the API schema and
docs/training-knobs.md are generated from it and agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.engine.config import KNOBS, PRESETS, ConfigError, FinetuneConfig, config_from, knobs_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "training-knobs.md"


def test_the_knobs_doc_is_generated_from_the_metadata():
    # After changing a knob: python -c "from training.engine.config import knobs_markdown as m; print(m(), end='')" \
    #   > docs/training-knobs.md
    assert DOCS.read_text() == knobs_markdown()
    for name, knob in KNOBS.items():
        assert f"| `{name}` | {knob.label} |" in DOCS.read_text()
    for preset in PRESETS.values():
        assert f"| `{preset.name}` | {preset.label} | {preset.description} |" in DOCS.read_text()


@pytest.mark.parametrize(
    "field, value, message",
    [("rank", "x", "whole number"), ("rank", True, "whole number"), ("learning_rate", float("nan"), "finite"),
     ("dropout", 1.0, "[0, 1)"), ("epochs", 0, "(0, 100]"), ("packing", "yes", "true or false"),
     ("target_modules", "q_proj", "list"), ("seed", -1, "between 0")],
)  # fmt: skip
def test_wrong_types_and_bounds_are_config_errors_naming_the_field(field, value, message):
    with pytest.raises(ConfigError) as info:
        FinetuneConfig(**{"base_model": "x", field: value})
    assert info.value.field == field and message in info.value.message


def test_config_from_applies_the_preset_then_overrides_then_fixed_values():
    cfg = config_from("quick", {"rank": 4, "alpha": None, "scheduler": "", "epochs": 2}, base_model="m")
    assert (cfg.rank, cfg.alpha, cfg.scheduler, cfg.epochs, cfg.base_model) == (4, 16, "cosine", 2.0, "m")
    assert isinstance(cfg.epochs, float)
    assert config_from("custom", {}, base_model="m") == FinetuneConfig(base_model="m")
    with pytest.raises(ConfigError) as info:
        config_from("nonsense", {}, base_model="m")
    assert info.value.field == "preset"


@pytest.mark.parametrize(
    ("parameters", "records", "overrides", "expected"),
    [
        (3_000_000, 50, {}, (15.0, 2e-3)),  # the demo model, 50 records: 6 steps a pass, 15 passes = 90 steps
        (7_000_000_000, 50, {}, (15.0, 3e-4)),  # a real model keeps its rate; a small Datanet still gets 90 steps
        (None, 50, {}, (15.0, 3e-4)),  # a hub id whose size is not known yet
        (3_000_000, 10_000, {}, (1.0, 2e-3)),  # a large Datanet keeps the preset's single pass
        (3_000_000, 5, {}, (20.0, 2e-3)),  # capped: at most 20 passes
        (3_000_000, 0, {}, (1.0, 2e-3)),  # nothing known about the data
        (3_000_000, 50, {"epochs": 2}, (2.0, 2e-3)),  # epochs set by hand win
        (3_000_000, 50, {"learning_rate": 1e-4}, (15.0, 1e-4)),
        (3_000_000, 50, {"batch_size": 2}, (4.0, 2e-3)),  # 24 steps a pass with batch 2: 4 passes
    ],
)  # fmt: skip
def test_presets_are_sized_to_the_model_and_the_datanet(parameters, records, overrides, expected):
    cfg = config_from("quick", overrides, parameter_count=parameters, records=records, base_model="m")
    assert (cfg.epochs, cfg.learning_rate) == pytest.approx(expected)


def test_max_steps_or_custom_leave_the_passes_alone():
    cfg = config_from("quick", {"max_steps": 7}, parameter_count=3_000_000, records=50, base_model="m")
    assert (cfg.max_steps, cfg.epochs) == (7, 1.0)
    assert config_from("custom", {}, parameter_count=3_000_000, records=50, base_model="m").epochs == 1.0
    balanced = config_from("balanced", {}, parameter_count=3_000_000, records=50, base_model="m")
    assert (balanced.epochs, balanced.learning_rate, balanced.rank) == (30.0, 1.5e-3, 16)  # 200 steps, capped at 30
    with pytest.raises(ConfigError) as info:  # a wrong type is still the config's error, not a crash
        config_from("quick", {"batch_size": "x"}, parameter_count=3_000_000, records=50, base_model="m")
    assert info.value.field == "batch_size"


def test_the_form_fields_come_from_the_metadata():
    from training.forms import ADVANCED, TrainingForm

    fields = TrainingForm.base_fields
    assert ADVANCED == [k.name for k in KNOBS.values() if k.advanced]
    assert (fields["rank"].min_value, fields["rank"].max_value) == (KNOBS["rank"].min, KNOBS["rank"].max)
    assert fields["grad_accum"].label == "Gradient accumulation" == KNOBS["grad_accum"].label
    assert fields["learning_rate"].help_text == KNOBS["learning_rate"].help
    assert [v for v, _ in fields["scheduler"].choices] == ["", *KNOBS["scheduler"].values]
    assert [v for v, _ in fields["packing"].choices] == ["", "true", "false"]
    assert [v for v, _ in fields["preset"].choices] == list(PRESETS)
    assert fields["rank"].widget.attrs["placeholder"] == str(PRESETS["quick"].values["rank"])


@pytest.mark.django_db
def test_the_api_schema_describes_every_knob(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    assert schema["StartRequest"]["properties"]["config"] == {"$ref": "#/components/schemas/FinetuneConfigRequest"}
    config = schema["FinetuneConfigRequest"]
    assert "required" not in config  # every setting is optional
    assert set(config["properties"]) == {k for k in KNOBS if k not in ("base_model", "schema")}
    for name, prop in config["properties"].items():
        assert prop["description"].startswith(KNOBS[name].help)
    assert (config["properties"]["rank"]["minimum"], config["properties"]["rank"]["maximum"]) == (1, 1024)
    assert schema["MethodEnum"]["enum"] == list(KNOBS["method"].values)
    assert schema["PresetEnum"]["enum"] == list(PRESETS)
