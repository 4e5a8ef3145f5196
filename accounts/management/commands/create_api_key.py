from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import ApiKeyError, create_api_key


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it (the only time it is shown)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="A label for the key (default: cli).")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        try:
            _, raw = create_api_key(user, name)
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(raw)
