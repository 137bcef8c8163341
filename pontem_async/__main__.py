"""``python -m pontem_async`` runs the ``pontem-async`` command."""

import sys

from pontem_async.cli import main

sys.exit(main())
