"""python -m imagelab_client: the same as the `imagelab` command."""

import sys

from imagelab_client.cli import main

sys.exit(main())
