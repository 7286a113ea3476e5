"""Test settings: the real settings, with a throwaway secret so pytest needs no environment.

DATABASE_URL and REDIS_URL still switch the suite onto PostgreSQL and Redis (.ci/run does).
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("BROKER_VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test"))

from broker_site.settings import *  # noqa: F403
