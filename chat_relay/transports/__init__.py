"""How streams reach clients: the Socket.IO handlers and the HTTP routes, and what each writes on the wire."""
