from __future__ import annotations

from django import forms

from datanets.models import Datanet, Role, Schema, Visibility
from datanets.parsing import EXTRA, FORMATS, IGNORE, SCHEMA_FIELDS

LICENCES = [
    ("CC-BY-4.0", "CC BY 4.0: anyone may reuse, crediting you"),
    ("CC-BY-SA-4.0", "CC BY-SA 4.0: reuse with credit, under the same licence"),
    ("CC-BY-NC-4.0", "CC BY-NC 4.0: reuse with credit, not commercially"),
    ("CC0-1.0", "CC0 1.0: no rights reserved"),
    ("ODC-By-1.0", "ODC-By 1.0: open database, with credit"),
    ("MIT", "MIT"),
    ("Apache-2.0", "Apache 2.0"),
]
OTHER = "other"
MAX_COLUMNS = 500


class DatanetForm(forms.ModelForm):
    domain_tags = forms.CharField(required=False, help_text="Words separated by commas, e.g. legal, contracts.")
    licence = forms.ChoiceField(
        choices=[*LICENCES, (OTHER, "Other (type its name below)")],
        help_text="The terms under which people may reuse the records.",
    )
    licence_other = forms.CharField(
        required=False, max_length=80, label="Other licence", help_text="Only if you chose “Other” above."
    )

    class Meta:
        model = Datanet
        fields = ["name", "slug", "description", "domain_tags", "licence", "visibility", "schema",
                  "review_policy", "review_votes", "models_after_removal"]  # fmt: skip
        widgets = {
            "description": forms.Textarea(attrs={"rows": 4}),
            "review_policy": forms.RadioSelect,
            "models_after_removal": forms.RadioSelect,
            "review_votes": forms.NumberInput(attrs={"min": 1, "max": 5}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order_fields([*self.Meta.fields[:5], "licence_other", *self.Meta.fields[5:]])
        self.fields["slug"].required = False
        self.fields["slug"].help_text = (
            "The last part of the Datanet's address, e.g. contract-clauses in /datanets/contract-clauses/. "
            "Left empty, it comes from the name."
        )
        self.fields[
            "review_votes"
        ].help_text = "How many validators, never the uploader, must accept a record that waits for review."
        # A form (or script) that predates this setting keeps the Datanet's current choice.
        self.fields["models_after_removal"].required = False
        if self.instance.pk:
            self.initial["domain_tags"] = ", ".join(self.instance.domain_tags or [])
            known = {value for value, _ in LICENCES}
            if self.instance.licence not in known:
                self.initial["licence"], self.initial["licence_other"] = OTHER, self.instance.licence
            self.fields["slug"].disabled = True
            self.fields["schema"].disabled = True  # records already follow it

    def clean_models_after_removal(self) -> str:
        return self.cleaned_data.get("models_after_removal") or self.instance.models_after_removal or "block"

    def clean_domain_tags(self) -> list[str]:
        tags = [t.strip().lower() for t in self.cleaned_data["domain_tags"].split(",") if t.strip()]
        if len(tags) > 10 or any(len(t) > 40 for t in tags):
            raise forms.ValidationError("Up to 10 tags of at most 40 characters.")
        return list(dict.fromkeys(tags))

    def clean(self):
        data = super().clean()
        if data.get("licence") == OTHER:
            other = (data.get("licence_other") or "").strip()
            if not other:
                self.add_error("licence_other", "Type the name of the licence, or choose one from the list.")
            data["licence"] = other
        data.pop("licence_other", None)
        return data


class UploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL, JSON array, CSV, Parquet or TXT.")
    file_format = forms.ChoiceField(choices=[("auto", "From the file name"), *[(f, f.upper()) for f in FORMATS]])
    txt_mode = forms.ChoiceField(
        choices=[("line", "One record per line"), ("paragraph", "One record per paragraph")],
        required=False,
        help_text="For TXT files.",
    )
    map_text = forms.CharField(required=False, max_length=100, label="Column for text")
    map_instruction = forms.CharField(required=False, max_length=100, label="Column for instruction")
    map_input = forms.CharField(required=False, max_length=100, label="Column for input")
    map_output = forms.CharField(required=False, max_length=100, label="Column for output")
    map_messages = forms.CharField(required=False, max_length=100, label="Column for messages")

    def options(self) -> dict:
        data = self.cleaned_data
        mapping = {k[4:]: v.strip() for k, v in data.items() if k.startswith("map_") and v and v.strip()}
        return {"file_format": data["file_format"], "txt_mode": data.get("txt_mode") or "line", "mapping": mapping}


def column_choices(data, schema: str) -> dict[str, str]:
    """column → field, EXTRA or IGNORE, from the preview form's column-name-<i> / column-use-<i> pairs."""
    allowed = {*SCHEMA_FIELDS[schema], EXTRA, IGNORE}
    choices = {}
    for i in range(MAX_COLUMNS):
        name = data.get(f"column-name-{i}")
        if name is None:
            break
        use = data.get(f"column-use-{i}", "")
        if use not in allowed:
            raise forms.ValidationError(f"Choose what to do with the column “{name[:100]}”.")
        choices[name] = use
    return choices


class AccessRequestForm(forms.Form):
    role = forms.ChoiceField(choices=[(r, Role(r).label) for r in (Role.VIEWER, Role.CONTRIBUTOR, Role.VALIDATOR)])
    message = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(
        choices=[(r, Role(r).label) for r in (Role.VIEWER, Role.CONTRIBUTOR, Role.VALIDATOR, Role.OWNER)]
    )


class ModerationForm(forms.Form):
    ids = forms.CharField(help_text="Comma-separated contribution ids.")
    decision = forms.ChoiceField(choices=[("accept", "Accept"), ("reject", "Reject")])
    reason = forms.CharField(required=False, max_length=500)
    malicious = forms.BooleanField(required=False)

    def clean_ids(self) -> list[int]:
        try:
            ids = [int(x) for x in self.cleaned_data["ids"].split(",") if x.strip()]
        except ValueError:
            raise forms.ValidationError("Ids must be numbers.") from None
        if not ids or len(ids) > 500:
            raise forms.ValidationError("Choose between 1 and 500 contributions.")
        return ids


class FilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100)
    domain = forms.CharField(required=False, max_length=40)
    visibility = forms.ChoiceField(required=False, choices=[("", "Any visibility"), *Visibility.choices])
    schema = forms.ChoiceField(required=False, choices=[("", "Any schema"), *Schema.choices])
    mine = forms.BooleanField(required=False)
