"""The runner agent: enrolls with Core, keeps a gRPC stream open, and runs signed jobs on its host.

Modules, outside in: ``cli`` (``aisopsflow runner enroll|start``), ``config``
(flags and AISOPSFLOW_RUNNER_*), ``state`` (the 0700 state directory),
``enroll`` (CA pinning, Enroll, the renewal hook), ``agent`` (the connect
loop, jobs, renewal), ``session`` (one channel and stream), ``outbox``
(SQLite: outbox, seen nonces, job journal), ``verify`` (pure job checks),
``jobs`` / ``chunks`` / ``groups`` (running one job in its process group),
``inventory``. Nothing here imports Core's database, Redis, queue or web code
(import-linter contract in setup.cfg).
"""
