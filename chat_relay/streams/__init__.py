"""One stream's life, whatever the transport: validated, produced into its buffer, delivered, resumed."""
