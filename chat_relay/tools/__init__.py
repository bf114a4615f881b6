"""Server-side tools: Python functions the team registers with `@relay.tool`, which the relay offers to the model
and runs itself, in the same stream (docs/protocol.md, "Server-side tools").

`registry` (the functions and their JSON Schemas), `runner` (one call, with its timeout, to a part), `loop` (the
rounds of one stream: run the calls, ask the model again), `tool_error` (the error a tool raises for its user).
"""
