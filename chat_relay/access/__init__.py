"""Who may use the relay, and how much: tokens, hosts and origins, connection counts, and the admission of streams."""
