"""One runner for batch work over many inputs (cohorts of scans, sets of simulated pairs).

``run(job, items, out)`` calls ``job(input, name, folder) -> dict`` once per item. The job
writes its outputs into ``folder``, a fresh temporary folder, under names of its choosing
(``<name>/`` or ``<name>.mrk.json``); the runner then moves them into ``out`` by renaming
and writes a small record of the item last, in ``out/.cochleaai-batch/done/<name>.json``.
So an interrupted run (Ctrl-C, a killed job) leaves no half-written output, and the next
run skips exactly the items whose record is there, whose outputs all exist, whose input is
unchanged and whose settings (``signature``) are the same. One run at a time holds an
output folder (:mod:`.lock`; a second is refused, naming the first, and a killed run's lock
is free), its worker processes die with it however it ends, and SIGTERM stops it as Ctrl-C
does (:mod:`.lifetime`).

The runner also gives each item a unique name (:func:`items_from_files`), caps the
threads of every worker (torch, numba, OpenMP/BLAS; :mod:`cochleaai.threads`), reports
progress as items finish, and turns an item that raises into a row with an ``error``
while the batch goes on. With ``workers > 1`` the items run in separate processes
(spawned), and with ``scheduler`` on a Dask cluster (:mod:`cochleaai.batch.cluster`); ``job``
must then be picklable: a module-level function, or a ``functools.partial`` of one.
Every item gets the same arguments wherever it runs, so results do not depend on where.
``warm_up()``, when given, runs once in every worker before its first item (imports,
compiled kernels, a model read from disk), so that the first item costs what the others do
and a worker's start-up is not counted in any item's time.

Rows come back in the order of the items, each with ``name``, ``input``, ``status``
(``done``, ``resumed`` or ``failed``), the job's own fields, ``output`` (the paths it
wrote, ``; ``-separated), ``item_seconds`` (wall time), ``item_cpu_seconds`` (CPU time of
the worker process: well below ``item_seconds`` means the worker waited for a core),
``started`` (UTC), ``worker`` (host:process) and, for a failure, ``error``.
"""
from cochleaai.batch.items import RECORDS, Item, items_from_files
from cochleaai.batch.runner import add_arguments, exit_status, locked, options, run, write_csv

__all__ = ["Item", "items_from_files", "run", "locked", "write_csv", "exit_status", "add_arguments", "options",
           "RECORDS"]
