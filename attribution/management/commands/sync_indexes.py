from django.core.management.base import BaseCommand

from attribution.indexing import sync_index
from datanets.models import Datanet


class Command(BaseCommand):
    help = "Bring every Datanet's retrieval index in step with its accepted records (rebuilds lost ones)."

    def handle(self, *args, **options):
        for pk in Datanet.objects.values_list("pk", flat=True):
            state = sync_index(pk)
            self.stdout.write(f"datanet {pk}: generation {state.generation}, {state.records} records")
