"""The workflow engine's state changes: start, advance, approve, cancel, retry, reconcile.

Every change here happens in one write transaction together with its audit
row; messages are sent only after the commit (a lost one is re-sent by the
reconciler, because the database is the source of truth).
"""
