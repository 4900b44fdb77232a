"""`failure-monitor` / `python -m services.failure_monitor`."""

from .app import FailureMonitor

main = FailureMonitor.main

if __name__ == "__main__":
    main()
