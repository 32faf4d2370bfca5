"""The PythonContext worker: runs code sent by a Stencila host in a persistent namespace.

Started by the host as `python3 -u -S <this script> <host pid> <memory limit in bytes,
0 for none> <longest reply line in bytes>` (the script is a file, or `-c <script>`).
It speaks one JSON object per line on private copies of the original stdin/stdout
(see the framing in worker.rs), taken before `site` runs, so a sitecustomize that
prints cannot corrupt the channel. Before any user code runs, fd 0 is pointed at
/dev/null and fds 1/2 at pipes drained by a thread, so nothing user code does (print,
os.write, subprocesses, closing sys.stdout) can reach the protocol channel; what it
writes is captured, bounded, and returned as stdout/stderr messages.

The script is the files of python/worker/ joined in order (setup, capture, values,
run, analysis, pointers, serve): one module, split by responsibility.
"""

import sys

# The launcher put the script's directory (or, for `-c`, the cwd) first on sys.path:
# the worker's own modules must never come from there (a json.py in the directory the
# host runs in would replace the worker's json). The cwd comes back for user code once
# the worker's imports are done (see the end of the imports).
_SAFE_PATH = bool(getattr(sys.flags, "safe_path", False))
if not _SAFE_PATH and sys.path:
    del sys.path[0]

import os

# Private, non-inheritable copies of the protocol pipes, taken before `site` runs (the
# host starts the worker with -S): whatever site, a .pth file or a sitecustomize prints
# goes to stderr, never into the reply channel.
PROTO_IN = os.dup(0)
PROTO_OUT = os.dup(1)
LOG_FD = os.dup(2)
os.dup2(LOG_FD, 1)
if sys.flags.no_site:
    import site

    site.main()

import _signal
import ast
import binascii
import builtins
import codecs
import collections
import fcntl
import io
import json
import keyword
import math
import select
import signal
import threading
import time
import traceback
import types
import warnings

try:
    import ctypes
except ImportError:  # a Python built without ctypes: no parent-death signal
    ctypes = None
try:
    import resource
except ImportError:
    resource = None

# User code imports modules from the current directory, as in a REPL.
if not _SAFE_PATH:
    sys.path.insert(0, "")

# Per stream and per execute; the rest is counted and reported as omitted.
OUTPUT_CAP = 1 << 20
# Alternating tiny writes to both streams could otherwise make millions of messages.
MAX_CHUNKS = 10000
# Nesting kept when packing; deeper values become their repr. Well inside the
# host's JSON parser's nesting limit (128), counting the reply's own levels.
MAX_DEPTH = 64
# The longest repr sent for a value that has no JSON form, in bytes of UTF-8.
REPR_CAP = 100000
# The longest error or warning text, in bytes of UTF-8; and all warnings of one execute.
MESSAGE_CAP = 1 << 20
WARNINGS_CAP = 1 << 20
# Integers beyond this lose precision as JSON numbers in most clients, so they are
# sent as decimal strings.
SAFE_INT = (1 << 53) - 1
CODE_CACHE_SIZE = 256
# Compiled code is cached by its source; the sources kept are bounded in bytes, and a
# source longer than CODE_CACHE_ITEM is never cached.
CODE_CACHE_BYTES = 16 << 20
CODE_CACHE_ITEM = 1 << 20
# The longest reply line the host accepts, in bytes without the newline (its MAX_LINE,
# passed as the third argument); None when started without one.
MAX_REPLY = None
USER_FILE = "<code>"
STDIN_MESSAGE = "stdin is not available: code in a Stencila context runs without an input stream"

# Kept before user code runs, so that rebinding json.dumps or os.write in user code
# cannot break the protocol.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_loads = json.loads
_write = os.write
_fstat = os.fstat
_read = os.read
_dup2 = os.dup2

executing = False
WORKER_PID = None  # set in main(); a forked child sees another pid
REQUEST_ID = None  # the id of the request being handled

# Live output: what an execute prints is also queued here as it is kept, and a thread
# sends it to the host as event frames `{"id": N, "event": {"type": "stdout", "text":
# ...}}` while the code runs: at once after a quiet spell, then at most every
# LIVE_INTERVAL, in pieces of at most LIVE_CHUNK characters. What is queued is bounded
# by the output cap, since only kept output is queued. The reply still carries all of
# it as messages, so a plain execute answer is unchanged.
LIVE = collections.deque()
LIVE_WAKE = threading.Event()
LIVE_ID = None  # the execute whose output is streamed now
LIVE_INTERVAL = 0.05
LIVE_CHUNK = 1 << 16
# Event frames and replies share the protocol stream: one writer at a time.
SEND_LOCK = threading.Lock()


class ArgumentError(Exception):
    """A request whose arguments are wrong: reported to the caller, not a worker fault."""


def utf8_size(text):
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def clip(text, limit):
    """`text` cut to at most `limit` bytes of UTF-8, with a note of what was cut."""
    if len(text) <= limit // 4 or (len(text) <= limit and text.isascii()):
        return text
    head = text[:limit]  # at most 4 * limit bytes
    data = head.encode("utf-8", "surrogatepass")
    if len(head) == len(text) and len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", "ignore")
    return "%s... [%d of its %d characters cut]" % (kept, len(text) - len(kept), len(text))


def log(text):
    try:
        _write(LOG_FD, ("stencila python worker: " + text + "\n").encode("utf-8", "replace"))
    except Exception:
        pass

