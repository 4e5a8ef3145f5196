from django.core.management.base import BaseCommand

from attribution import anchoring
from attribution.engine.chain import ChainError
from attribution.models import Anchor


class Command(BaseCommand):
    help = "Try every PENDING anchor now (the worker also retries them with backoff)."

    def handle(self, *args, **options):
        for anchor in Anchor.objects.filter(status=Anchor.Status.PENDING).order_by("pk"):
            try:
                anchoring.attempt(anchor.pk)
                self.stdout.write(f"{anchor.ref}: anchored")
            except ChainError as exc:
                self.stdout.write(f"{anchor.ref}: still pending ({exc})")
