from django.db import migrations, models


def json_scheme_for_closed_epochs(apps, schema_editor):
    """Epochs closed before on-chain payment keep the leaves their anchored roots were computed from."""
    apps.get_model("attribution", "RewardEpoch").objects.filter(status="closed").update(leaf_scheme="json")


class Migration(migrations.Migration):
    dependencies = [("attribution", "0002_salted_ledger_leaves")]

    operations = [
        migrations.AddField(
            model_name="rewardepoch",
            name="leaf_scheme",
            field=models.CharField(
                choices=[("json", "JSON rows, SHA-256 (RFC 9162), anchored as data"),
                         ("keccak", "ABI-encoded rows, keccak (OpenZeppelin), paid by the distributor")],
                default="keccak", max_length=8,
                help_text="How the ledger's leaves and root are computed; epochs closed before on-chain payment "
                "keep the JSON scheme.",
            ),
        ),
        migrations.AddField(
            model_name="rewardepoch",
            name="funded",
            field=models.PositiveBigIntegerField(
                default=0, help_text="Units sent to the distributor for this epoch: the rows with a wallet."
            ),
        ),
        migrations.AlterField(
            model_name="rewardentry",
            name="salt",
            field=models.CharField(
                blank=True, default="", max_length=64,
                help_text="Random bits in the leaf (256, hex), shown only to its contributor: the sibling hashes in "
                "another person's proof cannot be brute-forced to learn this row's amount. Empty on rows written "
                "before salting.",
            ),
        ),
        migrations.AddField(
            model_name="rewardentry",
            name="carried_in",
            field=models.PositiveBigIntegerField(
                default=0, help_text="Units carried from earlier epochs that closed while this person had no wallet."
            ),
        ),
        migrations.AddField(
            model_name="rewardentry",
            name="claim_tx",
            field=models.CharField(blank=True, help_text="The claim transaction, once seen.", max_length=66),
        ),
        migrations.RunPython(json_scheme_for_closed_epochs, migrations.RunPython.noop),
    ]
