"""What the suite's environment needs before Django starts (pyproject: `-p tests.environment`).

Settings are read before any conftest is, so this is a plugin. DEBUG stays off, as in
production, and settings then refuse to start without a key: the suite makes one per run,
which the servers and workers it starts inherit.
"""

import os
import secrets

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
# Servers the suite starts don't load the local model as they start (CHAT_LOCAL_PRELOAD):
# most never use it. Tests of the preload turn it on.
os.environ.setdefault("CHAT_LOCAL_PRELOAD", "false")
# This run's Redis keys and channels (the worker queue too), apart from any other run's;
# the servers and workers it starts inherit it.
os.environ["CHAT_REDIS_PREFIX"] = f"chattest{os.getpid()}"
