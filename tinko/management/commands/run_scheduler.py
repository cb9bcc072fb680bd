import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from tinko import metrics, scheduler

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
        signals = []

        def request_stop(signum, frame):
            # Finish the tick in progress, then leave: nothing is half-claimed. No
            # logging here: a line written from a signal handler can land inside a
            # line the tick is writing, and the handler's error would then skip stop.set().
            signals.append(signum)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        interval = settings.TINKO_SCHEDULER_TICK
        if settings.TINKO_SCHEDULER_METRICS_PORT:
            # Metrics and probes on a separate listener (no authentication: never publish it).
            # Claiming work matters more than being watched: a taken port is logged, not fatal.
            try:
                metrics.serve(port=settings.TINKO_SCHEDULER_METRICS_PORT, addr=settings.TINKO_METRICS_ADDR,
                              alive=lambda: scheduler.alive(interval=interval))
            except OSError:
                logger.exception("Cannot serve metrics on port %s", settings.TINKO_SCHEDULER_METRICS_PORT)
        logger.info("Scheduler started, ticking every %s s", interval)
        scheduler.run_forever(interval=interval, stop=stop)
        if signals:
            logger.info("Scheduler stopping (signal %d)", signals[0])
        logger.info("Scheduler stopped")
