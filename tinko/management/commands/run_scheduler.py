import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from tinko import scheduler

logger = logging.getLogger("tinko.scheduler")


class Command(BaseCommand):
    help = "Run the scheduler: tick every TINKO_SCHEDULER_TICK seconds and enqueue due work (stops on SIGTERM)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one tick and exit (e.g. from cron).")

    def handle(self, *args, once=False, **options):
        if once:
            scheduler.tick()
            return
        stop = threading.Event()
        received = []

        def request_stop(signum, frame):
            # Finish the tick in progress, then leave: nothing is half-claimed. No
            # logging here: the signal may arrive while the main thread is writing a
            # log line, and a second write into the same stream raises instead.
            received.append(signum)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        interval = settings.TINKO_SCHEDULER_TICK
        logger.info("Scheduler started, ticking every %s s", interval)
        scheduler.run_forever(interval=interval, stop=stop)
        if received:
            logger.info("Scheduler stopping (signal %d)", received[0])
        logger.info("Scheduler stopped")
