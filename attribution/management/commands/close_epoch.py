from django.core.management.base import BaseCommand, CommandError

from attribution import rewards


class Command(BaseCommand):
    help = "Close the open reward epoch: split its pool by influence, write the ledger root, anchor it."

    def add_arguments(self, parser):
        parser.add_argument("--pool", type=int, help="Pool in base units (default: the configured pool).")

    def handle(self, *args, pool=None, **options):
        try:
            epoch = rewards.close_epoch(pool)
        except rewards.RewardError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"epoch {epoch.number}: {epoch.distributed} distributed, {epoch.withheld} withheld, root {epoch.root}"
        )
