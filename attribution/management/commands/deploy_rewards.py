import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from attribution import distribution
from attribution.engine.chain import ChainError, ChainUnavailable


class Command(BaseCommand):
    help = (
        "Deploy the reward token and the Merkle distributor (compiled from contracts/) from the anchoring account, "
        "once per chain: their addresses are kept in VAR_DIR/chain/contracts.json. With REWARD_TOKEN_ADDRESS and "
        "REWARD_DISTRIBUTOR_ADDRESS set, the existing contracts are used and nothing is deployed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=float, default=60, help="Seconds to wait for a chain that is starting.")

    def handle(self, *args, **options):
        deadline = time.monotonic() + options["wait"]
        while True:
            try:
                found = distribution.addresses(deploy_missing=True)
                break
            except ChainUnavailable as exc:
                if time.monotonic() > deadline:
                    raise CommandError(f"The reward contracts were not deployed: {exc}") from None
                time.sleep(0.5)
            except ChainError as exc:
                raise CommandError(f"The reward contracts were not deployed: {exc}") from None
        self.stdout.write(f"Reward token: {found.token}\nDistributor: {found.distributor}")
        if not settings.CHAIN_DEV_KEY_OK and not settings.REWARD_TOKEN_ADDRESS:
            self.stdout.write(
                f"Set REWARD_TOKEN_ADDRESS={found.token} and REWARD_DISTRIBUTOR_ADDRESS={found.distributor} "
                "in the environment of every process."
            )
