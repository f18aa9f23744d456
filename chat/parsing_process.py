"""How chat.parsing's worker process starts: below the server's priority, then Django.

A module of its own, importing nothing of the site: the worker loads it before Django
is set up, and chat.parsing needs Django set up to be imported.
"""

import multiprocessing
import multiprocessing.connection
import os
import threading

import django

# A large body is one user's; when the CPU is short, everyone else's requests go first.
NICENESS = 10


def set_up() -> None:
    """The worker's initializer: lower its priority, end with its server, then set Django up."""
    os.nice(NICENESS)
    parent = multiprocessing.parent_process()
    threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    django.setup()


def _exit_with(parent_sentinel: int) -> None:
    # A worker waiting for work never hears that its server ended: one killed, or one
    # that `uvicorn --workers` stopped or replaced, left its 80 MB worker running for good.
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(0)
