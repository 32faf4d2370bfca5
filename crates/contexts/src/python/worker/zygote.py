# worker/zygote.py: The fork server (zygote): forks ready workers for the host.
# The Python worker is these files joined in order (python/mod.rs, WORKER_SCRIPT): one
# module, one namespace.
# ---------------------------------------------------------------------------
# The zygote
#
# Started as `python3 -u -S <script> <the worker's arguments...> --zygote <preload>`
# (the worker's arguments where a worker has them, so what the script reads from
# them as it loads is the same) with its stdin one end of a SOCK_SEQPACKET socket pair (its control
# socket; see worker/zygote.rs for the protocol). It has read and compiled this
# script and imported the worker's modules (and `<preload>`, comma-separated module
# names, or `-`) and then only waits: each `fork` request carries three fds, the new
# worker's stdin, stdout and stderr. It forks with CLONE_PARENT, so the worker is the
# host's child (the host reaps it by pid, as a spawned one; the zygote never has
# children and so nothing to reap), and answers with the child's pid.
#
# The zygote stays single-threaded, so a fork copies no lock held by another thread:
# it starts no thread itself (the worker's threads start in main(), in the child), and
# a preloaded module that starts one is refused at start with a clear message, unless
# its threads stop at a fork (see zygote_settle: numpy's OpenBLAS pool does).
#
# The child resets what must not be shared: its process group (its own), signal
# dispositions and mask (a fresh interpreter's), the protocol fds (the three it was
# given), the random seeds (`random`, and numpy's global generator if imported), the
# host watch and parent-death signal (set again in main()), and its argv (the worker's).
#
# CLONE_PARENT is the raw clone system call (ctypes), bracketed by what os.fork does
# around fork(): PyOS_BeforeFork / PyOS_AfterFork_Child / PyOS_AfterFork_Parent (import
# lock, thread states, os.register_at_fork hooks). What glibc's fork() adds is not
# needed in a single-threaded process (its locks are free) but one thing: the child's
# main thread keeps the zygote's thread id in glibc's thread descriptor, used only as
# the owner tag of recursive mutexes; that id stays the zygote's while it lives.

# x86_64, aarch64, riscv64: clone(flags, stack, parent_tid, ...) with the flags first.
CLONE_SYSCALLS = {"x86_64": 56, "aarch64": 220, "riscv64": 220}
CLONE_PARENT = 0x00008000


ZYGOTE_CALLS = None  # (syscall, its arguments, before, after in child, after in parent)


def zygote_prepare_clone():
    global ZYGOTE_CALLS
    api = ctypes.pythonapi
    # PyDLL: the call keeps the GIL, as os.fork does.
    raw = ctypes.PyDLL(None, use_errno=True).syscall
    raw.restype = ctypes.c_long
    arguments = (
        ctypes.c_long(CLONE_SYSCALLS[os.uname().machine]),
        ctypes.c_ulong(CLONE_PARENT | int(signal.SIGCHLD)),
        None, None, None, None,
    )
    ZYGOTE_CALLS = (raw, arguments, api.PyOS_BeforeFork, api.PyOS_AfterFork_Child, api.PyOS_AfterFork_Parent)


def zygote_clone_parent():
    """Forks; the child's parent is the zygote's parent (the host). 0 in the child."""
    raw, arguments, before, after_child, after_parent = ZYGOTE_CALLS
    before()
    pid = raw(*arguments)
    if pid == 0:
        after_child()
        return 0
    error = ctypes.get_errno()
    after_parent()
    if pid < 0:
        raise OSError(error, os.strerror(error))
    return pid


def zygote_threads():
    """How many threads this process has, as Python and as the kernel count them."""
    try:
        tasks = len(os.listdir("/proc/self/task"))
    except OSError:
        tasks = 1
    return max(threading.active_count(), tasks)


def zygote_settle():
    """Forks once with fork(), the child exiting at once, and reaps it: a library whose
    threads stop at a fork (OpenBLAS, which numpy loads, stops its thread pool in a
    pthread_atfork handler and starts it again only when next used) is then
    single-threaded again. The number of threads after."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return zygote_threads()


def zygote_preload(names):
    """Imports the modules to preload; an error message, or None."""
    for name in names:
        try:
            __import__(name)
        except BaseException as error:
            return "could not preload %s: %s" % (name, describe(error))
        threads = zygote_threads()
        if threads > 1 and zygote_settle() > 1:
            return (
                "preloading %s started %d threads: a zygote must stay single-threaded to fork "
                "safely (a fork copies locks other threads hold), so it cannot be preloaded"
                % (name, threads - 1)
            )
    return None


def zygote_send(control, message):
    control.send(_dumps(message).encode("utf-8"))


def zygote_child(control, fds, defaults):
    """Becomes a fresh worker on the fds the host sent (stdin, stdout, stderr)."""
    try:
        os.setpgid(0, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for number, handler in defaults.items():
            try:
                if _signal.getsignal(number) is not handler:
                    signal.signal(number, handler)
            except (OSError, ValueError, TypeError):
                pass
        os.close(control.detach())
        stdin, stdout, stderr = fds
        _dup2(stdin, PROTO_IN, inheritable=False)
        _dup2(stdout, PROTO_OUT, inheritable=False)
        _dup2(stderr, LOG_FD, inheritable=False)
        _dup2(stderr, 1)
        _dup2(stderr, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        _dup2(null, 0)
        for fd in (null, stdin, stdout, stderr):
            os.close(fd)
        # The worker's own arguments; "-c" rather than the script's /proc/self/fd path,
        # which the zygote closed (main() must not close that number again).
        sys.argv = ["-c"] + sys.argv[1:-2]
        import random

        random.seed()
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            try:
                numpy.random.seed()
            except Exception as error:
                log("could not reseed numpy: " + describe(error))
        main()
    except BaseException as error:
        log("a forked worker failed to start: " + describe(error))
    finally:
        os._exit(1)


def zygote_main():
    import gc
    import socket

    control = socket.socket(fileno=PROTO_IN)
    if ctypes is None or os.uname().machine not in CLONE_SYSCALLS or not hasattr(socket, "recv_fds"):
        zygote_send(control, {"error": "this Python cannot fork workers (it needs ctypes, socket.recv_fds from 3.9, and a known clone call)"})
        os._exit(1)
    preload = [name for name in sys.argv[-1].split(",") if name and name != "-"]
    host_pid = int(sys.argv[1])
    close_script_fd()
    die_with_host(host_pid)
    zygote_prepare_clone()
    # A fresh interpreter's signal dispositions, for the children to start from.
    defaults = {}
    for number in signal.valid_signals():
        try:
            handler = signal.getsignal(number)
        except (OSError, ValueError):
            continue
        if handler is not None:
            defaults[number] = handler
    error = zygote_preload(preload)
    if error is None and zygote_threads() > 1:
        error = "the zygote has %d threads after start: it must have one" % zygote_threads()
    if error is not None:
        zygote_send(control, {"error": error})
        os._exit(1)
    # Everything so far is kept out of the collector's reach: a collection in a child
    # would otherwise touch (and so copy) every page of the shared heap.
    gc.collect()
    gc.freeze()
    zygote_send(control, {"ready": True, "pid": os.getpid()})
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 64, 3)
        except OSError as error:
            log("the zygote's control socket failed: " + describe(error))
            os._exit(1)
        if not message:
            os._exit(0)  # the host closed it
        if message != b"fork" or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            zygote_send(control, {"error": "a malformed request"})
            continue
        if zygote_threads() > 1 and zygote_settle() > 1:
            for fd in fds:
                os.close(fd)
            zygote_send(control, {"error": "the zygote is no longer single-threaded"})
            continue
        try:
            pid = zygote_clone_parent()
        except OSError as error:
            pid = None
            reason = describe(error)
        if pid == 0:
            zygote_child(control, fds, defaults)
        for fd in fds:
            os.close(fd)
        if pid is None:
            zygote_send(control, {"error": "fork failed: " + reason})
        else:
            zygote_send(control, {"pid": pid})
