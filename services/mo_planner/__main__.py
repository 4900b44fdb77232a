"""`mo-planner` / `python -m services.mo_planner`."""

from .app import Planner

main = Planner.main

if __name__ == "__main__":
    main()
