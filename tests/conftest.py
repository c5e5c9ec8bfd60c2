"""Shared pytest set-up: deterministic hypothesis runs on CI.

Locally, hypothesis draws new examples each run (more chances to find a bug). On CI (the ``CI``
environment variable set, as GitHub Actions, GitLab and most runners do) the draws are fixed
(``derandomize``) and nothing is read from or written to an example database, so a run's result
depends only on the code. Recent hypothesis versions do this by themselves; this keeps it true for
the oldest version ``pyproject.toml`` allows.
"""

import os

from hypothesis import settings

settings.register_profile("tinyspike-ci", derandomize=True, deadline=None, database=None)
if os.environ.get("CI"):
    settings.load_profile("tinyspike-ci")
