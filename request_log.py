"""Structured log lines on stdout, in the form Cloud Logging reads, written in batches.

A write to stdout per request blocks that request, and under load makes it queue for the
GIL behind the other threads: it cost up to a sixth of the function's throughput. So
entries are queued, and a background thread encodes and writes what has queued every
FLUSH_SECONDS. Errors are written at once, and whatever is queued when the process exits.
"""

import atexit
import collections
import json
import os
import sys
import threading
import time

FLUSH_SECONDS = 0.2


class RequestLog:
    def __init__(self):
        self.pending = collections.deque()  # append and popleft are atomic: no lock on the hot path
        self.flush_lock = threading.Lock()
        self.writer_pid = None
        atexit.register(self.flush)

    def write(self, entry, now=False):
        self.pending.append(entry)  # encoded by the writer, off the request's path
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
            entries = []
            while self.pending:
                entries.append(self.pending.popleft())
            if entries:
                sys.stdout.write("".join(json.dumps(entry) + "\n" for entry in entries))
                sys.stdout.flush()
