from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from datanets.seed import seed_datanets
from training.seed import seed_base_model

DEMO_USERNAME = "demo"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "modelfactory-demo"


class Command(BaseCommand):
    help = "Seed demo data for local use (refused unless DEBUG is on). Safe to run twice."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo only runs with DEBUG=true: it creates a user with a known password.")
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USERNAME, defaults={"email": DEMO_EMAIL})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
            EmailAddress.objects.get_or_create(
                user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
            )
        for datanet in seed_datanets(user):
            self.stdout.write(
                f"Datanet: {datanet.name} ({datanet.visibility}) at {settings.SITE_URL}/datanets/{datanet.slug}/"
            )
        self.stdout.write(f"Base model: {seed_base_model(self.stdout.write)}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo user: {DEMO_USERNAME} / {DEMO_PASSWORD}  (sign in at {settings.SITE_URL}/accounts/login/)"
            )
        )
