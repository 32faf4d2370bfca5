# worker/capture.py: Output capture (sys.stdout/stderr objects, fds 1/2 drained from pipes, warnings) and signals and the host's life.
# The Python worker is these files joined in order (python/mod.rs, WORKER_SCRIPT): one
# module, one namespace.
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

