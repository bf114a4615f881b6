"""The team's hooks: who is asking (identify, asked by chat_relay/access/identity.py), what is sent (prepare,
forward_user), what happened (finish), and how much each user may use (budget); team_hooks holds them together for
the transports."""
