"""How chat.parsing's worker process starts: below the server's priority, then Django.

A module of its own, importing nothing of the site: the worker loads it before Django
is set up, and chat.parsing needs Django set up to be imported.
"""

import os

import django

# A large body is one user's; when the CPU is short, everyone else's requests go first.
NICENESS = 10


def set_up() -> None:
    """The worker's initializer: lower its priority, then set Django up."""
    os.nice(NICENESS)
    django.setup()
