"""``python -m hpcore.bench`` = ``hpcore bench``."""
import sys

from hpcore.bench import main

sys.exit(main())
