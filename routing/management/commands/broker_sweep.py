"""Run the expiry/redelivery/time-out sweep outside the server, once or every few seconds."""

import time

from django.core.management.base import BaseCommand
from django.db import connection

from broker_site.sweeper import sweep_pass


class Command(BaseCommand):
    help = "Expire messages past their ttl and redeliver unacked ones (safe beside the in-server sweeper)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes")

    def handle(self, *args, once: bool = False, interval: float = 2.0, **options) -> None:
        if once:
            counts = sweep_pass()
            self.stdout.write(" ".join(f"{name}={count}" for name, count in counts.items()))
            return
        while True:
            sweep_pass()
            connection.close()  # between passes a long-lived loop holds no connection
            time.sleep(interval)
