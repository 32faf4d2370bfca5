# worker/serve.py: The request loop, live output frames and main().
# The Python worker is these files joined in order (python/mod.rs, WORKER_SCRIPT): one
# module, one namespace.
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


def encode_buffers(frame):
    """The frame's JSON as UTF-8 buffers to be written in order: a packed value's
    pre-encoded Fragments (values.py) are written as they are, never copied into one
    reply text."""
    try:
        buffers = []
        for piece in json_pieces(frame):
            if type(piece) is Fragment:
                buffers.extend(piece.buffers())
            else:
                buffers.append(piece.encode("utf-8", "replace"))
        return buffers
    except Exception as error:
        return [_dumps({
            "id": frame.get("id"),
            "error": "the reply could not be encoded: " + describe(error),
            "internal": True,
        }).encode("utf-8", "replace")]


def encode(frame):
    return b"".join(encode_buffers(frame))


def fit(frame, size):
    """A frame that fits in a reply line, for one whose encoding is `size` bytes."""
    result = frame.get("result")
    text = too_big_text(result, size)
    if isinstance(result, dict) and "messages" in result and "value" in result:
        # An execute: the value is dropped, the messages are capped and kept.
        value = result.get("value")
        if isinstance(value, dict):
            text = "the value (of type %s) is too big to send: its JSON form is about %d bytes, over the limit of %d bytes for a reply" % (
                value.get("type"),
                size,
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
            size,
            MAX_REPLY,
        )
        return {"id": frame.get("id"), "result": {"type": result.get("type"), "data": None, "error": text}}
    return {"id": frame.get("id"), "error": "the reply is too big to send: %d bytes, over the limit of %d bytes" % (size, MAX_REPLY)}


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
    write_buffers([data])


# Buffers per writev call (POSIX guarantees at least 16; Linux allows 1024).
WRITE_BATCH = 512
_writev = getattr(os, "writev", None)


def write_buffers(buffers):
    """Writes the buffers and a newline as one reply line, without joining them."""
    views = [memoryview(buffer) for buffer in buffers if len(buffer)]
    views.append(memoryview(b"\n"))
    index = 0
    while index < len(views):
        if _writev is None:
            written = _write(PROTO_OUT, views[index])
        else:
            written = _writev(PROTO_OUT, views[index:index + WRITE_BATCH])
        # Skip what was written: whole buffers, then the start of the next one.
        while written and index < len(views):
            size = views[index].nbytes
            if written >= size:
                written -= size
                index += 1
            else:
                views[index] = views[index][written:]
                written = 0


def send(frame):
    global LIVE_ID
    with SEND_LOCK:
        if LIVE_ID is not None and frame.get("id") == LIVE_ID:
            # The rest of the execute's output goes before its reply.
            send_live(LIVE_ID)
            LIVE_ID = None
        send_unlocked(frame)


def send_unlocked(frame):
    buffers = encode_buffers(frame)
    size = sum(memoryview(buffer).nbytes for buffer in buffers)
    if MAX_REPLY is not None and size > MAX_REPLY:
        buffers = None  # freed before the error frame is made
        data = encode(fit(frame, size))
        if len(data) > MAX_REPLY:
            data = encode({"id": frame.get("id"), "error": "the reply is too big to send", "internal": True})
        buffers = [data]
    write_buffers(buffers)


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
            # An interrupt (or a timeout) is never the caller's error: like an
            # interrupted execute, the call answers with an error message
            # (`list`/`set` interrupted while, say, pandas builds a DataFrame).
            frame = {"id": request_id, "result": {
                "messages": [{"type": "error", "message": "KeyboardInterrupt: the call was interrupted before it finished"}],
                "value": None,
            }}
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


if len(sys.argv) > 2 and sys.argv[-2] == "--zygote":
    zygote_main()  # worker/zygote.py: forks workers that each go on to main()
else:
    main()
