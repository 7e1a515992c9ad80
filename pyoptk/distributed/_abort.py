"""One rank's uncaught exception ends the job (MPI_Abort) instead of leaving the other ranks
waiting in their next collective forever, as ``python -m mpi4py`` does for the scripts it runs."""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["abort_on_uncaught_exception"]


def abort_on_uncaught_exception(comm: Any) -> None:
    """Under plain ``python``, make an uncaught exception print its traceback and then abort the
    job through ``comm``. Left alone when a hook other than Python's default is installed (the
    user's own, or a debugger's)."""
    if sys.excepthook is not sys.__excepthook__:
        return

    def abort(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        sys.__excepthook__(kind, value, tb)
        sys.stderr.flush()
        comm.Abort(1)

    sys.excepthook = abort
