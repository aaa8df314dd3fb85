"""``python -m rerank_operator.sandbox [component ...]``: pre-build the pinned binaries and print their paths.

Components: kubernetes, kine, kwok, helm (default: all). Same as ``rerank-operator sandbox --build-only``.
"""

import sys

from rerank_operator.sandbox.build import main

sys.exit(main())
