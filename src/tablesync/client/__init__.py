"""The tablesync client: sync tables, the local store, the operation queue, push, pull, purge."""
