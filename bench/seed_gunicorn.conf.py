"""gunicorn settings for the seed baseline (bench/seed_server.py): `-k gevent -w 1`, as the seed ran.

Passed with `-c` so gunicorn does not read the relay's ./gunicorn.conf.py. worker_connections
matches the relay's, so both servers may hold the same number of clients.
"""

import os

workers = 1
worker_class = "gevent"
worker_connections = 2000
control_socket_disable = True  # no ~/.gunicorn/gunicorn.ctl
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
loglevel = "warning"
errorlog = "-"
