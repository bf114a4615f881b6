"""A small team app built on the relay with its hooks: its own login, a tool on its own data, per-user history,
budgets by plan.

Run it as examples/team_app/app.py's docstring says; the parts are app.py (routes, the relay mounted),
team_hooks.py (the relay's hooks: who is asking, what is sent, what is saved, how much each may use),
team_tools.py (the tool the model may call, run on the server) and store.py (its SQLite data).
"""
