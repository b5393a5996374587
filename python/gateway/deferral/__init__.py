"""Deferred calls: held per target, sent together where that lowers the price, and kept in the state database so a
worker that dies loses none (the held calls' store is store/deferred.py; the RPCs, server/deferred.py)."""
