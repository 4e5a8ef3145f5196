from __future__ import annotations

from django import forms

from datanets.models import Datanet, Role, Schema, Visibility
from datanets.parsing import FORMATS


class DatanetForm(forms.ModelForm):
    domain_tags = forms.CharField(required=False, help_text="Comma-separated, e.g. legal, contracts.")

    class Meta:
        model = Datanet
        fields = ["name", "slug", "description", "domain_tags", "licence", "visibility", "schema"]
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False
        self.fields["slug"].help_text = "The address: /datanets/<slug>/. Left empty, it comes from the name."
        if self.instance.pk:
            self.fields["domain_tags"].initial = ", ".join(self.instance.domain_tags)
            self.fields["slug"].disabled = True
            self.fields["schema"].disabled = True  # records already follow it

    def clean_domain_tags(self) -> list[str]:
        tags = [t.strip().lower() for t in self.cleaned_data["domain_tags"].split(",") if t.strip()]
        if len(tags) > 10 or any(len(t) > 40 for t in tags):
            raise forms.ValidationError("Up to 10 tags of at most 40 characters.")
        return tags


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
