"""Structured log lines on stdout, in the form Cloud Logging reads, written in batches.

A write to stdout per request blocks that request, and under load makes it queue for the
GIL behind the other threads: it cost up to a sixth of the function's throughput. So
lines are queued, and a background thread writes what has queued every FLUSH_SECONDS.
Errors are written at once, and whatever is queued when the process exits.

A request queues only its line's fields, and the writer makes the lines. Made in its request,
among the framework's own work, a line took some 14 us of a served request's time (its code
and data long gone from the CPU's caches); made a few hundred in a row, about 1.5 us each.
"""

import atexit
import collections
import json
import os
import sys
import threading
import time
from json.encoder import encode_basestring_ascii as json_string  # what json.dumps(a str) calls

FLUSH_SECONDS = 0.2

# The line written for each request, from a template: the same text as json.dumps of the
# entry (tests compare them) at a third of its cost. Strings are escaped by the function
# json.dumps itself calls for a string; the rest are numbers.
REQUEST_LINE = (
    '{"severity": "%s", "message": %s, "httpRequest": {"requestMethod": %s, "requestUrl": %s, '
    '"status": %d, "latency": "%.6fs", "requestSize": %s, "responseSize": "%d", "userAgent": %s}, '
    '"rows": %d}'
)


def request_line(method, path, status, seconds, request_size, response_size, user_agent, rows):
    severity = "INFO" if status < 400 else "WARNING" if status < 500 else "ERROR"
    return REQUEST_LINE % (
        severity, json_string(f"{method} {path} {status}"), json_string(method), json_string(path),
        status, seconds, json_string(request_size), response_size, json_string(user_agent), rows,
    )


class RequestLog:
    def __init__(self):
        self.pending = collections.deque()  # append and popleft are atomic: no lock on the hot path
        self.flush_lock = threading.Lock()
        self.writer_pid = None
        atexit.register(self.flush)

    def write(self, entry, now=False):
        """Log an entry (a dict); with now=True, write it and all before it at once."""
        self.write_line(json.dumps(entry), now)

    def write_request(self, *fields):
        """Log one request: request_line's fields, made into its line when it is written."""
        self.write_line(fields)

    def write_line(self, line, now=False):
        """Queue a line, or a request's fields (a tuple) for its line."""
        self.pending.append(line)
        # The writer thread starts in the process that serves: gunicorn forks its worker after
        # main.py is imported, and threads don't survive a fork.
        if self.writer_pid != os.getpid():
            with self.flush_lock:
                if self.writer_pid != os.getpid():
                    self.writer_pid = os.getpid()
                    threading.Thread(target=self.keep_flushing, daemon=True).start()
        if now:
            self.flush()

    def keep_flushing(self):
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self):
        with self.flush_lock:
            lines = []
            while self.pending:
                line = self.pending.popleft()
                lines.append(line if type(line) is str else request_line(*line))
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
