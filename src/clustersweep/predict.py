"""`python -m clustersweep.predict MODEL_URI INPUT --out clusters.csv` (the logic: `clustersweep.app.predict`)."""

import sys

if __name__ == "__main__":
    from clustersweep.app.predict import main

    sys.exit(main())
