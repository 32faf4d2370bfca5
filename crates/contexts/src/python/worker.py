"""The PythonContext worker: runs code sent by a Stencila host in a persistent namespace.

Started by the host as `python3 -u -S <this script> <host pid> <memory limit in bytes,
0 for none> <longest reply line in bytes>` (the script is a file, or `-c <script>`).
It speaks one JSON object per line on private copies of the original stdin/stdout
(see the framing in worker.rs), taken before `site` runs, so a sitecustomize that
prints cannot corrupt the channel. Before any user code runs, fd 0 is pointed at
/dev/null and fds 1/2 at pipes drained by a thread, so nothing user code does (print,
os.write, subprocesses, closing sys.stdout) can reach the protocol channel; what it
writes is captured, bounded, and returned as stdout/stderr messages.
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


# ---------------------------------------------------------------------------
# Output capture


class Output:
    """What user code wrote during one execute, in order, bounded."""

    def __init__(self):
        self.reset()

    def reset(self):
        # Items are [kind, parts, line]: stdout/stderr parts are coalesced.
        self.items = []
        self.used = {"stdout": 0, "stderr": 0}
        self.omitted = {"stdout": 0, "stderr": 0}
        self.warned = 0
        self.warnings_omitted = 0

    def add(self, stream, text, live=True):
        """Keeps `text` within the caps; `live`: also queue it for the live events
        (fd output was queued as it was read, see keep_fd_output)."""
        if not text:
            return
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        room = OUTPUT_CAP - self.used[stream]
        if size > room:
            self.omitted[stream] += size - max(room, 0)
            if room <= 0:
                return
            text = text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
            size = room
        items = self.items
        if items and items[-1][0] == stream:
            items[-1][1].append(text)
        elif len(items) < MAX_CHUNKS:
            items.append([stream, [text], None])
        else:
            self.omitted[stream] += size
            return
        self.used[stream] += size
        if live:
            LIVE.append((stream, text))
            LIVE_WAKE.set()

    def warning(self, message, line):
        message = clip(message, MESSAGE_CAP)
        size = utf8_size(message)
        if self.warned + size > WARNINGS_CAP or len(self.items) >= MAX_CHUNKS:
            self.warnings_omitted += 1
            return
        self.warned += size
        self.items.append(["warning", [message], line])

    def messages(self):
        messages = []
        for kind, parts, line in self.items:
            message = {"type": kind, "message": "".join(parts)}
            if line is not None:
                message["line"] = line
            messages.append(message)
        for stream in ("stdout", "stderr"):
            if self.omitted[stream]:
                messages.append({
                    "type": "warning",
                    "message": "[output truncated: %d bytes of %s omitted]"
                    % (self.omitted[stream], stream),
                })
        if self.warnings_omitted:
            messages.append({
                "type": "warning",
                "message": "[warnings truncated: %d more warnings omitted]" % self.warnings_omitted,
            })
        self.reset()
        return messages


OUTPUT = Output()


class Captured:
    """What the captured streams share: a writable, uncloseable stand-in for fd 1 or 2."""

    def __init__(self, stream, fd):
        self._stream = stream
        self._fd = fd

    def writable(self):
        return True

    def fileno(self):
        # Writes to the fd itself are captured too (fd 1/2 point at capture files).
        return self._fd

    def isatty(self):
        return False

    def close(self):
        # Closing the captured stream would break later executes; it is a no-op.
        pass


class CapturedBytes(Captured, io.RawIOBase):
    """`sys.stdout.buffer`: bytes written here are captured as text."""

    def write(self, data):
        data = bytes(data)
        OUTPUT.add(self._stream, data.decode("utf-8", "replace"))
        return len(data)


class CapturedText(Captured, io.TextIOBase):
    """`sys.stdout` and `sys.stderr` while user code runs."""

    encoding = "utf-8"
    errors = "replace"
    newlines = None
    line_buffering = False

    def __init__(self, stream, fd):
        Captured.__init__(self, stream, fd)
        self.buffer = CapturedBytes(stream, fd)

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        OUTPUT.add(self._stream, text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass


class NoStdin(io.TextIOBase):
    """`sys.stdin`: there is no input stream, so reading is a clear error."""

    encoding = "utf-8"
    errors = "strict"

    def read(self, size=-1):
        raise EOFError(STDIN_MESSAGE)

    def readline(self, size=-1):
        raise EOFError(STDIN_MESSAGE)

    def readlines(self, hint=-1):
        raise EOFError(STDIN_MESSAGE)

    def readable(self):
        return True

    def fileno(self):
        return 0

    def isatty(self):
        return False

    def close(self):
        pass


# fd-level output (os.write, subprocesses) goes to pipes, not files: a thread drains
# them as they fill and keeps the first OUTPUT_CAP bytes of each stream per execute,
# counting the rest. A writer never waits on the worker for long (its writes succeed and
# what is over the cap is dropped and reported as omitted), and the memory held is the
# cap plus the pipe's buffer whatever it writes. While user code holds the GIL in C
# code, the drain thread cannot run, so a writer blocks once the pipe is full until the
# GIL is released.
CAPTURE_LOCK = threading.Lock()
FD_KEPT = {"stdout": bytearray(), "stderr": bytearray()}
FD_DROPPED = {"stdout": 0, "stderr": 0}
# fd output is streamed live as it is read; a character split between two reads is
# decoded once whole.
FD_DECODERS = {
    "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
    "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
}


def fresh_capture_lock():
    # A fork in user code may copy the lock held by the drain thread, which does not
    # exist in the child: the child's collection would wait for it forever.
    global CAPTURE_LOCK
    CAPTURE_LOCK = threading.Lock()


os.register_at_fork(after_in_child=fresh_capture_lock)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def capture_pipe():
    """(read end, write end, buffer size) of a pipe for fd-level output."""
    read, write = os.pipe()
    try:
        fcntl.fcntl(write, F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass  # over the user's pipe quota: the default size works too
    try:
        size = fcntl.fcntl(read, F_GETPIPE_SZ)
    except OSError:
        size = 1 << 16
    os.set_blocking(read, False)
    return read, write, size


def keep_fd_output(name, data):
    kept = FD_KEPT[name]
    room = OUTPUT_CAP - len(kept)
    if room > 0:
        kept += data[:room]
        text = FD_DECODERS[name].decode(data[:room])
        if text:
            LIVE.append((name, text))
            LIVE_WAKE.set()
    FD_DROPPED[name] += max(len(data) - max(room, 0), 0)


def read_available(fd, name, limit):
    """Reads up to `limit` bytes that are in the pipe now; the caller holds CAPTURE_LOCK."""
    while limit > 0:
        try:
            data = _read(fd, min(limit, 1 << 20))
        except OSError:  # BlockingIOError: empty for now
            return
        if not data:
            return
        limit -= len(data)
        keep_fd_output(name, data)


def drain_pipes():
    poller = select.poll()
    names = {OUT_R: "stdout", ERR_R: "stderr"}
    for fd in names:
        poller.register(fd, select.POLLIN)
    while True:
        try:
            events = poller.poll()
        except Exception:
            return
        with CAPTURE_LOCK:
            for fd, event in events:
                if event & select.POLLNVAL:
                    return  # user code closed our read end: collection still reads it
                read_available(fd, names[fd], 1 << 22)


def collect_fd_output():
    """Adds what was written to fds 1/2 up to now to OUTPUT. Called with interrupts off."""
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass
    with CAPTURE_LOCK:
        # Only what is in the pipe now: a writer that keeps writing cannot hold us here.
        read_available(OUT_R, "stdout", OUT_SIZE)
        read_available(ERR_R, "stderr", ERR_SIZE)
        taken = [(name, bytes(FD_KEPT[name]), FD_DROPPED[name]) for name in ("stdout", "stderr")]
        for name in ("stdout", "stderr"):
            FD_KEPT[name] = bytearray()
            FD_DROPPED[name] = 0
    for name, data, dropped in taken:
        if data:
            # Already sent live as it was read.
            OUTPUT.add(name, data.decode("utf-8", "replace"), live=False)
        OUTPUT.omitted[name] += dropped


def prepare_streams():
    """Undo whatever the previous execute did to the standard streams."""
    _dup2(NULL_FD, 0)
    _dup2(OUT_W, 1)
    _dup2(ERR_W, 2)
    sys.stdin = STDIN
    sys.stdout = STDOUT
    sys.stderr = STDERR
    # _signal's getsignal skips the enum conversion of signal's (a few µs per call).
    if _signal.getsignal(signal.SIGINT) is not on_sigint:
        signal.signal(signal.SIGINT, on_sigint)
    if warnings.showwarning is not show_warning:
        warnings.showwarning = show_warning


def show_warning(message, category, filename, lineno, file=None, line=None):
    text = "%s: %s" % (category.__name__, message)
    if filename != USER_FILE:
        # A warning raised in a library: point at the user's line that led to it.
        lineno = None
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == USER_FILE:
                lineno = frame.f_lineno
                break
            frame = frame.f_back
    OUTPUT.warning(text, lineno)


# ---------------------------------------------------------------------------
# Signals and the host's life


def on_sigint(signum, frame):
    # A request is interrupted anywhere while it is handled (user code may also run
    # while a value is packed: __repr__, a DataFrame); an interrupt that arrives while
    # idle (e.g. just after a reply) is dropped so it cannot break the request loop.
    if executing:
        raise KeyboardInterrupt


def watch_host(host_pid, proto_in):
    """Ends this worker (and its process group) when the host goes away."""
    poller = select.poll()
    try:
        # No events asked for: poll still reports POLLHUP when the host's end closes,
        # even while the main thread is busy running user code.
        poller.register(proto_in, 0)
    except Exception:
        poller = None
    while True:
        if poller is not None:
            try:
                events = poller.poll(1000)
            except Exception:
                events = []
                poller = None
            hung_up = False
            for _, event in events:
                if event & select.POLLNVAL:
                    poller = None  # user code closed the fd: rely on the parent check
                elif event & (select.POLLHUP | select.POLLERR):
                    hung_up = True
            if hung_up:
                break
        else:
            time.sleep(0.5)
        if os.getppid() != host_pid:
            break
    end_all()


def end_all():
    try:
        if os.getpgrp() == os.getpid():
            os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)


# ---------------------------------------------------------------------------
# Packing values


# Functions that may run user code (__repr__, __str__, __lt__) catch Exception, never
# BaseException: a KeyboardInterrupt (an interrupt, or a timeout) must end the call.


def short_repr(value):
    try:
        text = repr(value)
    except Exception:
        return "<%s object>" % type_name(value)
    if not isinstance(text, str):
        return "<%s object>" % type_name(value)
    return clip(text, REPR_CAP)


def type_name(value):
    try:
        return type(value).__name__
    except Exception:
        return "object"


def module_of(value):
    module = getattr(type(value), "__module__", None)
    return module if isinstance(module, str) else ""


class TooBig(Exception):
    """A value whose JSON form would not fit in a reply."""


# The bytes a value being packed may still take, roughly (a lower bound): packing stops
# early, before building or encoding a form that could never be sent.
BUDGET = [0]


def charge(size):
    BUDGET[0] -= size
    if BUDGET[0] < 0:
        raise TooBig()


def too_big_text(value, size=None):
    """The error for a value too big to send: what it is, its size where known, the limit."""
    what = "a " + type_name(value)
    if type(value) in (str, bytes, bytearray, list, tuple, dict, set, frozenset):
        what += " of %d %s" % (len(value), "characters" if type(value) is str else "items")
    if size is None:
        form = "its JSON form is longer than the limit of %d bytes for a reply" % MAX_REPLY
    else:
        form = "its JSON form is %d bytes, over the limit of %d bytes for a reply" % (size, MAX_REPLY)
    return "the value (%s) is too big to send: %s" % (what, form)


def int_text(value):
    """The decimal form of an int; None beyond sys.get_int_max_str_digits()."""
    try:
        return str(int(value))
    except ValueError:
        return None


def integer_data(value):
    if -SAFE_INT <= value <= SAFE_INT:
        return int(value)
    return int_text(value)


def huge_int_text(value):
    return "<an integer of %d bits, more digits than sys.get_int_max_str_digits() allows>" % value.bit_length()


def is_missing(value):
    """pandas' NA and NaT, which are null in JSON."""
    return type_name(value) in ("NAType", "NaTType") and module_of(value).startswith("pandas")


def base64(data):
    return binascii.b2a_base64(bytes(data), newline=False).decode("ascii")


def key_text(key):
    if isinstance(key, str):
        return str(key)
    try:
        text = str(key)
        if isinstance(text, str):
            return text
    except Exception:
        pass
    return short_repr(key)


def sorted_if_possible(items):
    items = list(items)
    try:
        return sorted(items)
    except Exception:
        return items


def object_native(value, depth, active):
    """The JSON object for a dict; None when two keys have the same text (`{1: 'a', '1': 'b'}`)."""
    result = {}
    for k, v in value.items():
        text = key_text(k)
        charge(len(text) + 4)
        result[text] = native(v, depth + 1, active)
    return result if len(result) == len(value) else None


def native(value, depth, active):
    """A JSON-native form of a value inside an array or object."""
    if value is None or value is True or value is False:
        charge(5)
        return value
    if isinstance(value, str):
        charge(len(value) + 3)
        return str(value)
    if isinstance(value, int):
        charge(2)
        text = integer_data(value)
        if text is None:
            text = huge_int_text(value)
        return text
    if isinstance(value, float):
        charge(4)
        return float(value) if math.isfinite(value) else None
    if is_missing(value):
        charge(5)
        return None
    if depth >= MAX_DEPTH:
        return charged(short_repr(value))
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        key = id(value)
        if key in active:
            return "{...}" if isinstance(value, dict) else "[...]"
        active.add(key)
        try:
            charge(2)
            if isinstance(value, dict):
                result = object_native(value, depth, active)
                return charged(short_repr(value)) if result is None else result
            if isinstance(value, (set, frozenset)):
                value = sorted_if_possible(value)
            return [native(item, depth + 1, active) for item in value]
        finally:
            active.discard(key)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return charged(base64_of(value))
    if module_of(value) == "numpy":
        converted = numpy_native(value)
        if converted is not value:
            return native(converted, depth + 1, active)
    return charged(short_repr(value))


def charged(text):
    charge(len(text) + 3)
    return text


def base64_of(value):
    charge(memoryview(value).nbytes * 4 // 3)
    return base64(value)


def numpy_native(value):
    """A plain Python value for a numpy scalar or array; the value itself otherwise."""
    try:
        if hasattr(value, "tolist") and hasattr(value, "dtype"):
            return value.tolist()
    except Exception:
        pass
    return value


def pack(value):
    """The packed form of a value: {"type": ..., "data": ...} (PROTOCOL.md section 6).

    Raises KeyboardInterrupt (falling back to repr() could run the same endless user
    code again) and TooBig (a value whose JSON form would not fit in a reply)."""
    BUDGET[0] = MAX_REPLY if MAX_REPLY is not None else float("inf")
    try:
        return pack_unguarded(value)
    except (KeyboardInterrupt, TooBig):
        raise
    except Exception as error:
        BUDGET[0] = float("inf")  # the repr is clipped
        return {"type": type_name(value), "data": short_repr(value), "error": describe(error)}


def pack_or_error(value):
    """`pack`, with an interrupt or a value too big to send as an error in the packed value."""
    try:
        return pack(value)
    except KeyboardInterrupt:
        return {"type": type_name(value), "data": None, "error": INTERRUPTED_PACKING}
    except TooBig:
        return {"type": type_name(value), "data": None, "error": too_big_text(value)}


INTERRUPTED_PACKING = "KeyboardInterrupt: interrupted while converting the value"


def pack_unguarded(value):
    if value is None:
        return {"type": "null", "data": None}
    if isinstance(value, bool):
        return {"type": "boolean", "data": bool(value)}
    if isinstance(value, int):
        text = integer_data(value)
        if text is None:
            # Not an integer the receiver could read: the fallback of any other type.
            return {"type": type_name(value), "data": huge_int_text(value)}
        return {"type": "integer", "data": text}
    if isinstance(value, float):
        return {"type": "number", "data": float(value) if math.isfinite(value) else None}
    if isinstance(value, str):
        charge(len(value) + 2)
        return {"type": "string", "data": str(value)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return {"type": "array", "data": native(value, 0, set())}
    if isinstance(value, dict):
        data = native(value, 0, set())
        if isinstance(data, str):
            # Two keys with the same text: an object would silently lose one.
            return {"type": type_name(value), "data": data}
        return {"type": "object", "data": data}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "bytes", "data": base64_of(value), "encoding": "base64"}
    if is_missing(value):
        return {"type": "null", "data": None}
    module = module_of(value)
    name = type_name(value)
    if module.startswith("pandas") and name == "DataFrame":
        return pack_table(value)
    if module.startswith("matplotlib") and name == "Figure":
        return pack_figure(value)
    if module == "numpy":
        converted = numpy_native(value)
        if converted is not value:
            return pack_unguarded(converted)
    return {"type": name, "data": short_repr(value)}


COLUMN_TYPES = {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}


def pack_table(frame):
    columns = []
    for index in range(frame.shape[1]):
        series = frame.iloc[:, index]
        kind = series.dtype.kind
        if kind in "mM":
            missing = series.isna().tolist()
            texts = series.astype(str).tolist()
            values = [None if gap else charged(str(text)) for gap, text in zip(missing, texts)]
            column_type = "string"
        else:
            values = [native(v, 1, set()) for v in series.tolist()]
            column_type = COLUMN_TYPES.get(kind)
            if column_type is None:
                strings = all(v is None or isinstance(v, str) for v in values)
                column_type = "string" if strings else "object"
        columns.append({"name": key_text(frame.columns[index]), "type": column_type, "values": values})
    return {"type": "table", "data": {"columns": columns}}


def pack_figure(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    charge(buffer.tell() * 4 // 3)
    return {"type": "image", "src": "data:image/png;base64," + base64(buffer.getvalue())}


def packed_type(value):
    """The type `pack` would give, without packing (for `list`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    module = module_of(value)
    name = type_name(value)
    if module.startswith("pandas") and name == "DataFrame":
        return "table"
    if module.startswith("matplotlib") and name == "Figure":
        return "image"
    return name


def unpack(packed, what):
    """The Python value of a packed value sent by the host."""
    if not isinstance(packed, dict) or not isinstance(packed.get("type"), str):
        raise ArgumentError(
            '%s must be a packed value such as {"type": "integer", "data": 1}' % what
        )
    kind = packed["type"]
    data = packed.get("data")

    def wrong(expected):
        return ArgumentError("%s: a value of type '%s' needs %s as its data" % (what, kind, expected))

    if kind == "null":
        return None
    if kind == "boolean":
        if not isinstance(data, bool):
            raise wrong("true or false")
        return data
    if kind == "integer":
        if isinstance(data, bool):
            raise wrong("an integer")
        if isinstance(data, int):
            return data
        if isinstance(data, float) and data.is_integer():
            return int(data)
        if isinstance(data, str):
            try:
                return int(data)
            except ValueError:
                pass
        raise wrong("an integer (or its decimal string)")
    if kind == "number":
        if data is None:
            return math.nan
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
        raise wrong("a number")
    if kind == "string":
        if not isinstance(data, str):
            raise wrong("a string")
        return data
    if kind == "array":
        if not isinstance(data, list):
            raise wrong("an array")
        return data
    if kind == "object":
        if not isinstance(data, dict):
            raise wrong("an object")
        return data
    if kind == "bytes":
        try:
            return binascii.a2b_base64(data)
        except Exception:
            raise wrong("a base64 string") from None
    if kind == "table":
        columns = data.get("columns") if isinstance(data, dict) else None
        if not isinstance(columns, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("values"), list)
            for c in columns
        ):
            raise wrong('{"columns": [{"name": ..., "values": [...]}, ...]}')
        table = {c["name"]: c["values"] for c in columns}
        if len(table) != len(columns):
            raise ArgumentError("%s: two columns of the table have the same name" % what)
        if len({len(c["values"]) for c in columns}) > 1:
            raise ArgumentError("%s: the columns of a table must all have the same number of values" % what)
        try:
            import pandas
        except ImportError:
            return table
        try:
            return pandas.DataFrame(table)
        except Exception as error:
            raise ArgumentError("%s: not a table pandas accepts: %s" % (what, describe(error))) from None
    raise ArgumentError("%s: cannot unpack a value of type '%s'" % (what, kind))


# ---------------------------------------------------------------------------
# Running code


def fresh_namespace():
    return {"__name__": "__main__", "__builtins__": builtins, "sys": sys}


NAMESPACE = fresh_namespace()
CODE_CACHE = {}
CODE_CACHE_USED = 0  # characters of source held by CODE_CACHE (bytes for ASCII code)


def compile_code(code):
    """(body, last): the code compiled, with a final expression split off to be evaluated."""
    global CODE_CACHE_USED
    hit = CODE_CACHE.get(code)
    if hit is not None:
        return hit
    tree = ast.parse(code, USER_FILE, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), USER_FILE, "eval", dont_inherit=True)
    body = compile(tree, USER_FILE, "exec", dont_inherit=True) if tree.body else None
    size = len(code)
    if size > CODE_CACHE_ITEM:
        return body, last
    if len(CODE_CACHE) >= CODE_CACHE_SIZE or CODE_CACHE_USED + size > CODE_CACHE_BYTES:
        CODE_CACHE.clear()
        CODE_CACHE_USED = 0
    CODE_CACHE[code] = (body, last)
    CODE_CACHE_USED += size
    return body, last


def describe(error):
    name = type_name(error)
    try:
        text = str(error)
    except Exception:
        text = ""
    if not isinstance(text, str):
        text = ""
    return clip("%s: %s" % (name, text) if text else name, MESSAGE_CAP)


def column_of(tb):
    """The column of the instruction a traceback entry stopped at, where Python knows it."""
    try:
        lasti = tb.tb_lasti
        if lasti < 0:
            return None
        positions = tb.tb_frame.f_code.co_positions()
    except AttributeError:
        return None
    for index, position in enumerate(positions):
        if index == lasti // 2:
            line, _, column, _ = position
            return column if line == tb.tb_lineno else None
    return None


def error_message(error):
    message = {"type": "error", "message": describe(error)}
    tb = error.__traceback__
    last = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == USER_FILE:
            last = tb
        tb = tb.tb_next
    if last is not None and last.tb_lineno is not None:
        message["line"] = last.tb_lineno
        column = column_of(last)
        if column is not None:
            message["column"] = column
    return message


def syntax_message(error):
    message = {"type": "error", "message": clip("%s: %s" % (type_name(error), error.msg), MESSAGE_CAP)}
    if isinstance(error.lineno, int):
        message["line"] = error.lineno
        if isinstance(error.offset, int) and error.offset > 0:
            message["column"] = error.offset - 1
    return message


def run_user(body, last):
    try:
        if body is not None:
            exec(body, NAMESPACE)
        value = eval(last, NAMESPACE) if last is not None else None
    except BaseException as error:
        message = error_message(error)
        error.__traceback__ = None
        return message, None
    return None, value


def check_name(name, what):
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ArgumentError("%s needs `name`, a Python identifier" % what)
    if name.startswith("__") and name.endswith("__"):
        # `__builtins__` and its kind belong to Python: replacing one breaks the namespace.
        raise ArgumentError("%s: '%s' is a name Python reserves (a dunder name)" % (what, name))


def do_execute(args):
    global executing, LIVE_ID
    code = args.get("code")
    if not isinstance(code, str):
        raise ArgumentError("execute needs `code`, a string")
    inputs = args.get("inputs")
    if inputs is not None:
        if not isinstance(inputs, dict):
            raise ArgumentError("`inputs` must be an object of names to packed values")
        for name in inputs:
            check_name(name, "each input")
    packed = None
    failure = None
    value = None
    # From here what is printed goes to the host as it comes (see LIVE).
    LIVE_ID = REQUEST_ID
    if LIVE:
        LIVE_WAKE.set()
    try:
        # From here an interrupt (or a timeout) anywhere is this call's error message.
        if inputs:
            values = {}
            for name, packed_input in inputs.items():
                values[name] = unpack(packed_input, "input '%s'" % name)
            NAMESPACE.update(values)
        prepare_streams()
        try:
            body, last = compile_code(code)
        except SyntaxError as error:
            failure = syntax_message(error)
        except Exception as error:
            failure = {"type": "error", "message": describe(error)}
        else:
            failure, value = run_user(body, last)
        if value is not None:
            try:
                packed = pack_or_pointer(value)
            except TooBig:
                packed = None
                failure = {"type": "error", "message": too_big_text(value)}
    except KeyboardInterrupt:
        packed = None
        failure = {"type": "error", "message": "KeyboardInterrupt: the call was interrupted"}
        if value is not None:
            failure["message"] = INTERRUPTED_PACKING
    finally:
        # Our own bookkeeping, bounded in time: an interrupt now must not cut it short
        # and leave this call's output for the next one.
        executing = False
    collect_fd_output()
    messages = OUTPUT.messages()
    if failure is not None:
        messages.append(failure)
    return {"messages": messages, "value": packed}


def do_list(args):
    return [
        {"name": name, "type": packed_type(value)}
        for name, value in list(NAMESPACE.items())
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    ]


def do_get(args):
    name = args.get("name")
    if not isinstance(name, str):
        raise ArgumentError("get needs `name`, a string")
    if name not in NAMESPACE:
        raise ArgumentError("no variable named '%s'" % name)
    if is_frame(NAMESPACE[name]):
        return pack_or_pointer(NAMESPACE[name], name)
    return pack_or_error(NAMESPACE[name])


def do_set(args):
    name = args.get("name")
    check_name(name, "set")
    if "value" not in args:
        raise ArgumentError("set needs `value`, a packed value")
    NAMESPACE[name] = unpack(args["value"], "`value`")
    return None


# ---------------------------------------------------------------------------
# The 2018 clients (PROTOCOL.md section 13): dependency analysis and evaluate.
# Language-neutral translation of their methods lives in the host (legacy.rs);
# these are the two primitives only Python can answer.

ANALYSIS_IGNORED = frozenset(["sys", "__name__", "__builtins__"])


class Scope:
    """Names bound so far in one scope that runs now (module, class body, comprehension)."""

    def __init__(self, kind, parent):
        self.kind = kind  # "module", "class" or "comprehension"
        self.parent = parent
        self.bound = set()
        self.globals = set()  # `global` names of a class body


class Analysis:
    """Walks a module in execution order: what it reads before binding, and binds."""

    def __init__(self):
        import builtins

        self.builtins = frozenset(dir(builtins))
        self.module = Scope("module", None)
        self.inputs = []

    # -- names

    def read(self, name, scope):
        while scope is not None:
            if scope.kind == "class" and name in scope.globals:
                scope = self.module
                continue
            if name in scope.bound:
                return
            parent = scope.parent
            # Only a class body itself sees the class's names: not the comprehensions
            # or classes nested in it.
            while parent is not None and parent.kind == "class":
                parent = parent.parent
            scope = parent
        if name in self.builtins or name in ANALYSIS_IGNORED or name in self.inputs:
            return
        self.inputs.append(name)

    def bind(self, name, scope):
        if scope.kind == "class" and name in scope.globals:
            scope = self.module
        scope.bound.add(name)

    def binding_scope(self, scope):
        """Where a walrus binds: the nearest scope that is not a comprehension."""
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        return scope

    # -- statements

    def body(self, statements, scope):
        for statement in statements:
            self.statement(statement, scope)

    def statement(self, node, scope):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.exprs(node.decorator_list, scope)
            outer = self.type_params(node, scope)
            self.arguments(node.args, outer)
            self.expr(node.returns, outer)
            self.bind(node.name, scope)
        elif isinstance(node, ast.ClassDef):
            self.exprs(node.decorator_list, scope)
            outer = self.type_params(node, scope)
            self.exprs(node.bases, outer)
            self.exprs([keyword.value for keyword in node.keywords], outer)
            inner = Scope("class", scope)
            self.body(node.body, inner)
            self.bind(node.name, scope)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self.bind(alias.asname or alias.name.split(".")[0], scope)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    self.bind(alias.asname or alias.name, scope)
        elif isinstance(node, ast.Global):
            if scope.kind == "class":
                scope.globals.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            pass
        elif isinstance(node, ast.AugAssign):
            # `y += x` reads y, then x, then binds y.
            if isinstance(node.target, ast.Name):
                self.read(node.target.id, scope)
                self.expr(node.value, scope)
                self.bind(node.target.id, scope)
            else:
                self.expr(node.target, scope)
                self.expr(node.value, scope)
        elif isinstance(node, ast.Assign):
            self.expr(node.value, scope)
            for target in node.targets:
                self.target(target, scope)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.value, scope)
            self.expr(node.annotation, scope)
            if node.value is not None:
                self.target(node.target, scope)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter, scope)
            self.target(node.target, scope)
            self.body(node.body, scope)
            self.body(node.orelse, scope)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expr(item.context_expr, scope)
                if item.optional_vars is not None:
                    self.target(item.optional_vars, scope)
            self.body(node.body, scope)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.body(node.body, scope)
            for handler in node.handlers:
                self.expr(handler.type, scope)
                if handler.name:
                    self.bind(handler.name, scope)
                self.body(handler.body, scope)
            self.body(node.orelse, scope)
            self.body(node.finalbody, scope)
        elif type(node).__name__ == "Match":
            self.expr(node.subject, scope)
            for case in node.cases:
                self.pattern(case.pattern, scope)
                self.expr(case.guard, scope)
                self.body(case.body, scope)
        elif type(node).__name__ == "TypeAlias":
            self.bind(node.name.id, scope)
        else:
            # Expression statements, if/while, return, raise, assert, del, ...:
            # their expressions and nested statements in source order.
            for _, value in ast.iter_fields(node):
                if isinstance(value, list):
                    for item in value:
                        self.node(item, scope)
                else:
                    self.node(value, scope)

    def type_params(self, node, scope):
        """The scope of a generic's annotations (`def f[T](x: T)`): T is bound there."""
        names = [p.name for p in getattr(node, "type_params", None) or []]
        if not names:
            return scope
        inner = Scope("comprehension", scope)
        inner.bound.update(names)
        return inner

    def node(self, value, scope):
        if isinstance(value, ast.stmt):
            self.statement(value, scope)
        elif isinstance(value, ast.expr):
            self.expr(value, scope)

    def target(self, node, scope):
        if isinstance(node, ast.Name):
            self.bind(node.id, scope)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.target(element, scope)
        elif isinstance(node, ast.Starred):
            self.target(node.value, scope)
        else:
            # `a.b = ...`, `a[i] = ...`: reads `a` (and `i`), binds nothing.
            self.expr(node, scope)

    def pattern(self, node, scope):
        for child in ast.walk(node):
            if isinstance(child, ast.expr):
                self.expr(child, scope)
            name = getattr(child, "name", None) or getattr(child, "rest", None)
            if isinstance(name, str):
                self.bind(name, scope)

    # -- expressions

    def exprs(self, nodes, scope):
        for node in nodes:
            self.expr(node, scope)

    def arguments(self, args, scope):
        """Defaults and annotations run when the function is defined; the body does not."""
        self.exprs(args.defaults, scope)
        self.exprs([d for d in args.kw_defaults if d is not None], scope)
        every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
        self.exprs([a.annotation for a in every if a is not None and a.annotation is not None], scope)

    def expr(self, node, scope):
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                self.bind(node.id, scope)
            else:
                self.read(node.id, scope)
        elif isinstance(node, ast.Lambda):
            self.arguments(node.args, scope)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            self.comprehension(node, scope)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value, scope)
            self.bind(node.target.id, self.binding_scope(scope))
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, scope)
                elif isinstance(child, ast.comprehension):
                    self.comprehension_clause(child, scope)
                elif isinstance(child, ast.keyword):
                    self.expr(child.value, scope)
                elif isinstance(child, ast.arguments):
                    self.arguments(child, scope)
                else:
                    for grandchild in ast.iter_child_nodes(child):
                        self.node(grandchild, scope)

    def comprehension(self, node, scope):
        generators = node.generators
        # The first iterable is evaluated in the enclosing scope.
        self.expr(generators[0].iter, scope)
        inner = Scope("comprehension", scope)
        for index, generator in enumerate(generators):
            if index:
                self.expr(generator.iter, inner)
            self.target(generator.target, inner)
            self.exprs(generator.ifs, inner)
        if isinstance(node, ast.DictComp):
            self.expr(node.key, inner)
            self.expr(node.value, inner)
        else:
            self.expr(node.elt, inner)

    def comprehension_clause(self, node, scope):
        self.expr(node.iter, scope)
        self.target(node.target, scope)
        self.exprs(node.ifs, scope)


def output_of(statement):
    """The name the last statement binds, or None (for loops, tuple targets, imports)."""
    if isinstance(statement, ast.Assign):
        if len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            return statement.targets[0].id
    elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
        if isinstance(statement.target, ast.Name) and (
            not isinstance(statement, ast.AnnAssign) or statement.value is not None
        ):
            return statement.target.id
    elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return statement.name
    return None


def not_an_expression(tree):
    """The error for `exprOnly` code that is not exactly one expression."""
    message = {"type": "error", "message": "SyntaxError: the code must be a single expression (exprOnly)"}
    statements = [s for s in tree.body if not isinstance(s, ast.Expr)]
    if statements:
        message["line"] = statements[0].lineno
        message["column"] = statements[0].col_offset
    elif len(tree.body) > 1:
        message["line"] = tree.body[1].lineno
        message["column"] = tree.body[1].col_offset
    return message


def do_analyse(args):
    code = args.get("code")
    if not isinstance(code, str):
        raise ArgumentError("analyse needs `code`, a string")
    expr_only = args.get("exprOnly") is True
    result = {"inputs": [], "output": None, "messages": []}
    try:
        tree = ast.parse(code, USER_FILE, "exec")
    except SyntaxError as error:
        result["messages"].append(syntax_message(error))
        return result
    except (RecursionError, MemoryError, ValueError) as error:
        result["messages"].append({"type": "error", "message": describe(error)})
        return result
    if expr_only and (len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr)):
        result["messages"].append(not_an_expression(tree))
        return result
    analysis = Analysis()
    try:
        analysis.body(tree.body, analysis.module)
    except RecursionError:
        result["messages"].append({"type": "error", "message": "RecursionError: the code is nested too deeply to analyse"})
        return result
    result["inputs"] = analysis.inputs
    if tree.body:
        result["output"] = output_of(tree.body[-1])
    return result


def do_evaluate(args):
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise ArgumentError("evaluate needs the function's `name`, a string")
    positional = args.get("args")
    named = args.get("namedArgs")
    if positional is None:
        positional = []
    if named is None:
        named = {}
    if not isinstance(positional, list):
        raise ArgumentError("`args` must be an array of packed values")
    if not isinstance(named, dict):
        raise ArgumentError("`namedArgs` must be an object of names to packed values")
    values = [unpack(packed, "argument %d" % (index + 1)) for index, packed in enumerate(positional)]
    keywords = {}
    for key, packed in named.items():
        check_name(key, "each named argument")
        keywords[key] = unpack(packed, "named argument '%s'" % key)
    prepare_streams()
    import builtins

    function = NAMESPACE.get(name, getattr(builtins, name, None) if name.isidentifier() else None)
    value = None
    if function is None and name not in NAMESPACE:
        failure = {"type": "error", "message": "NameError: name '%s' is not defined" % name}
    elif not callable(function):
        failure = {"type": "error", "message": "TypeError: '%s' is a %s, not a function" % (name, type_name(function))}
    else:
        try:
            value = function(*values, **keywords)
            failure = None
        except BaseException as error:
            failure = error_message(error)
            error.__traceback__ = None
    try:
        packed = None if value is None else pack(value)
    except KeyboardInterrupt:
        packed = None
        failure = {"type": "error", "message": "KeyboardInterrupt: interrupted while converting the value"}
    collect_fd_output()
    messages = OUTPUT.messages()
    if failure is not None:
        messages.append(failure)
    return {"messages": messages, "value": packed}


# End of the 2018 clients' section.
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Pointers (PROTOCOL.md section 9): a table (a pandas DataFrame) over the inline limit
# stays in the worker, under the variable that holds it or a hidden holder, and is
# answered with a pointer; `fetch` pages through it. The host adds the pointer's
# `instance` and resolves pointers passed as inputs (the data never reaches the client).


def inline_limit(index, default):
    try:
        return int(sys.argv[index])
    except (IndexError, ValueError):
        return default


# Passed by the host after the longest reply (--max-inline).
MAX_INLINE_ROWS = inline_limit(4, 10000)
MAX_INLINE_BYTES = inline_limit(5, 8 << 20)
PREVIEW_ROWS = 20
FETCH_LIMIT = 1000
# Hidden holders kept (values no variable names); older ones are dropped.
HOLDERS_KEPT = 10
HOLDERS = {}
HOLDER_COUNT = [0]


def is_frame(value):
    return module_of(value).startswith("pandas") and type_name(value) == "DataFrame"


def pack_or_pointer(value, name=None):
    """`pack`, except that a table over the inline limit is kept and becomes a pointer."""
    if not is_frame(value):
        return pack(value)
    try:
        rows = int(value.shape[0])
    except Exception:
        return pack(value)  # a DataFrame look-alike: packed as `pack` sees it
    if rows <= MAX_INLINE_ROWS:
        try:
            packed = pack(value)
        except TooBig:
            packed = None
        if packed is not None and utf8_size(_dumps(packed)) <= MAX_INLINE_BYTES:
            return packed
    if name is None:
        name = variable_holding(value)
    if name is None:
        name = hold(value)
    preview = pack(value.iloc[:PREVIEW_ROWS])
    return {"type": "pointer", "name": name, "valueType": "table", "rows": rows, "preview": preview}


def variable_holding(value):
    for key, item in list(NAMESPACE.items()):
        if item is value and not key.startswith("_"):
            return key
    return None


def hold(value):
    HOLDER_COUNT[0] += 1
    name = "_stencila_value%d" % HOLDER_COUNT[0]
    HOLDERS[name] = value
    while len(HOLDERS) > HOLDERS_KEPT:
        del HOLDERS[next(iter(HOLDERS))]
    return name


def do_fetch(args):
    name = args.get("name")
    if not isinstance(name, str):
        raise ArgumentError("fetch needs `name`, a string")
    offset = args.get("offset", 0)
    limit = args.get("limit", FETCH_LIMIT)
    for number in (offset, limit):
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ArgumentError("fetch: `offset` and `limit` must be whole numbers, 0 or more")
    if name in HOLDERS:
        value = HOLDERS[name]
    elif name in NAMESPACE:
        value = NAMESPACE[name]
    else:
        raise ArgumentError(
            "no value named '%s' (values no variable holds are kept for the %d most recent pointers)"
            % (name, HOLDERS_KEPT)
        )
    if not is_frame(value):
        raise ArgumentError("'%s' is not a table (a pandas DataFrame) but %s" % (name, type_name(value)))
    try:
        return pack(value.iloc[offset:offset + limit])
    except TooBig:
        raise ArgumentError("a page of %d rows of '%s' is too large to send; ask for fewer" % (limit, name)) from None


# End of the pointers section.
# ---------------------------------------------------------------------------


METHODS = {"execute": do_execute, "list": do_list, "get": do_get, "set": do_set}
# The 2018 clients (section above).
METHODS.update({"analyse": do_analyse, "evaluate": do_evaluate})
# Pointers (section above).
METHODS["fetch"] = do_fetch


def handle(request):
    method = METHODS.get(request.get("method"))
    if method is None:
        raise ArgumentError("no method named '%s'" % request.get("method"))
    args = request.get("args")
    if not isinstance(args, dict):
        args = {}
    return method(args)


def answer(request_id, request):
    """Handles one request; interrupts reach it from start to end (see on_sigint)."""
    global executing, REQUEST_ID
    REQUEST_ID = request_id
    executing = True
    try:
        return {"id": request_id, "result": handle(request)}
    finally:
        executing = False


def encode(frame):
    try:
        return _dumps(frame).encode("utf-8", "replace")
    except Exception as error:
        return _dumps({
            "id": frame.get("id"),
            "error": "the reply could not be encoded: " + describe(error),
            "internal": True,
        }).encode("utf-8", "replace")


def fit(frame, data):
    """A frame that fits in a reply line, for one whose encoding `data` does not."""
    result = frame.get("result")
    text = too_big_text(result, len(data))
    if isinstance(result, dict) and "messages" in result and "value" in result:
        # An execute: the value is dropped, the messages are capped and kept.
        value = result.get("value")
        if isinstance(value, dict):
            text = "the value (of type %s) is too big to send: its JSON form is about %d bytes, over the limit of %d bytes for a reply" % (
                value.get("type"),
                len(data),
                MAX_REPLY,
            )
        messages = list(result.get("messages") or [])
        if len(encode({"result": {"messages": messages}})) + len(text) + 100 > MAX_REPLY:
            # The messages alone are too long for this limit: each gets a share of it.
            share = max((MAX_REPLY - len(text)) // (2 * len(messages) + 2) - 100, 0)
            messages = [dict(m, message=clip(str(m.get("message")), share)) for m in messages]
        messages.append({"type": "error", "message": text})
        return {"id": frame.get("id"), "result": {"messages": messages, "value": None}}
    if isinstance(result, dict) and "type" in result and "data" in result:
        # A packed value (`get`).
        text = "the value (of type %s) is too big to send: its JSON form is %d bytes, over the limit of %d bytes for a reply" % (
            result.get("type"),
            len(data),
            MAX_REPLY,
        )
        return {"id": frame.get("id"), "result": {"type": result.get("type"), "data": None, "error": text}}
    return {"id": frame.get("id"), "error": "the reply is too big to send: %d bytes, over the limit of %d bytes" % (len(data), MAX_REPLY)}


def take_live():
    """Pending live output as [stream, text] runs, each run of one stream joined."""
    runs = []
    while True:
        try:
            stream, text = LIVE.popleft()
        except IndexError:
            return runs
        if runs and runs[-1][0] == stream:
            runs[-1][1].append(text)
        else:
            runs.append([stream, [text]])


def send_live(request_id):
    """Sends pending live output as events of `request_id`; the caller holds SEND_LOCK."""
    for stream, parts in take_live():
        text = "".join(parts)
        for start in range(0, len(text), LIVE_CHUNK):
            event = {"type": stream, "text": text[start:start + LIVE_CHUNK]}
            write_line(encode({"id": request_id, "event": event}))


def stream_live():
    """The thread that sends an execute's output while its code runs."""
    while True:
        LIVE_WAKE.wait()
        LIVE_WAKE.clear()
        with SEND_LOCK:
            request_id = LIVE_ID
            if request_id is not None:
                try:
                    send_live(request_id)
                except OSError:
                    return
        # Later output waits a little, so a busy printer makes a few large events
        # rather than many small ones.
        time.sleep(LIVE_INTERVAL)


def write_line(data):
    data += b"\n"
    view = memoryview(data)
    while view:
        written = _write(PROTO_OUT, view)
        view = view[written:]


def send(frame):
    global LIVE_ID
    with SEND_LOCK:
        if LIVE_ID is not None and frame.get("id") == LIVE_ID:
            # The rest of the execute's output goes before its reply.
            send_live(LIVE_ID)
            LIVE_ID = None
        send_unlocked(frame)


def send_unlocked(frame):
    data = encode(frame)
    if MAX_REPLY is not None and len(data) > MAX_REPLY:
        data = encode(fit(frame, data))
        if len(data) > MAX_REPLY:
            data = encode({"id": frame.get("id"), "error": "the reply is too big to send", "internal": True})
    write_line(data)


def serve():
    reader = os.fdopen(PROTO_IN, "rb", buffering=1 << 16)
    while True:
        try:
            line = reader.readline()
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, on_sigint)  # user code had replaced it
            continue
        except OSError:
            break
        if not line:
            break
        try:
            request = _loads(line.decode("utf-8"))
            request_id = request["id"]
        except BaseException as error:
            log("skipping a malformed request: " + describe(error))
            continue
        try:
            frame = answer(request_id, request)
        except KeyboardInterrupt:
            frame = {"id": request_id, "error": "the call was interrupted before it finished"}
        except ArgumentError as error:
            frame = {"id": request_id, "error": str(error)}
        except BaseException as error:
            frame = {"id": request_id, "error": "the Python worker failed: " + describe(error), "internal": True}
            try:
                log("".join(traceback.format_exception(type(error), error, error.__traceback__)))
            except BaseException:
                pass
        if os.getpid() != WORKER_PID:
            # User code forked and this is the child: it must never answer the host.
            os._exit(0)
        if _signal.getsignal(signal.SIGINT) is not on_sigint:
            # User code replaced the handler: an idle interrupt must not cut a reply short.
            signal.signal(signal.SIGINT, on_sigint)
        try:
            send(frame)
        except OSError:
            break
    end_all()


def die_with_host(host_pid):
    """Asks the kernel to SIGKILL this worker when the thread that started it ends, even
    while the worker holds the GIL in C code (the watcher thread cannot run then).

    The kernel ties this to the host's thread that spawned the worker: the host starts
    workers from threads that live as long as its runtime does."""
    if ctypes is None or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log("could not set a parent-death signal: errno %d" % ctypes.get_errno())
            return
    except Exception as error:
        log("could not set a parent-death signal: " + describe(error))
        return
    if os.getppid() != host_pid:
        # The host ended before the signal was set: nothing will send it now.
        os._exit(0)


def close_script_fd():
    """Closes the host's copy of the script when started as `/proc/self/fd/N`: Python has
    read it, and user code's subprocesses must not inherit it."""
    prefix = "/proc/self/fd/"
    if sys.argv[0].startswith(prefix):
        try:
            os.close(int(sys.argv[0][len(prefix):]))
        except (ValueError, OSError):
            pass


def main():
    global NULL_FD, OUT_R, OUT_W, OUT_SIZE, ERR_R, ERR_W, ERR_SIZE, STDIN, STDOUT, STDERR
    global WORKER_PID, MAX_REPLY
    WORKER_PID = os.getpid()
    host_pid = int(sys.argv[1])
    memory = int(sys.argv[2])
    if len(sys.argv) > 3:
        MAX_REPLY = int(sys.argv[3])
    close_script_fd()
    die_with_host(host_pid)
    NULL_FD = os.open(os.devnull, os.O_RDONLY)
    OUT_R, OUT_W, OUT_SIZE = capture_pipe()
    ERR_R, ERR_W, ERR_SIZE = capture_pipe()
    STDIN = NoStdin()
    STDOUT = CapturedText("stdout", 1)
    STDERR = CapturedText("stderr", 2)
    signal.signal(signal.SIGINT, on_sigint)
    prepare_streams()
    # A small stack: under a memory limit (RLIMIT_AS) the default 8 MiB would count.
    threading.stack_size(256 << 10)
    threading.Thread(target=watch_host, args=(host_pid, PROTO_IN), daemon=True).start()
    threading.Thread(target=drain_pipes, daemon=True).start()
    threading.Thread(target=stream_live, daemon=True).start()
    threading.stack_size(0)
    if memory > 0:
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = memory if hard == resource.RLIM_INFINITY else min(memory, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        except Exception as error:
            log("could not limit memory: " + describe(error))
    send({"ready": True, "pid": os.getpid(), "python": "%d.%d.%d" % sys.version_info[:3]})
    serve()


main()
