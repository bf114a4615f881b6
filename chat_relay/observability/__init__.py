"""What operators see: the Prometheus metrics, the log lines (text or JSON), and bugs logged as one line."""
