"""Times the Python worker's packing and encoding of big values, without the host.

Run: python3 crates/bench/pack_profile.py [--profile] [--repeat N] [--worker DIR]

It loads the worker script (the files of crates/contexts/src/python/worker/ joined in
order, as python/mod.rs does, less the final `main()`) and, for each value, times what
an execute does after the user's code ran: `pack_or_pointer` of the value and the
encoding of the reply frame (`encode`), with the host's reply limit (256 MiB) and an
inline limit high enough that tables stay inline. It prints the best of N runs in ms,
wall-clock and CPU time of this process (on a loaded machine the CPU time is the
better guide to what the work costs), and the reply's size; `--profile` adds a cProfile summary per value. numpy and pandas
rows are skipped, with a note, where those are not installed. `--worker DIR` loads
the worker's files from DIR instead (e.g. an older commit's, from `git archive`), to
compare before and after in one sitting.
"""

import cProfile
import os
import pstats
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "..", "contexts", "src", "python", "worker")
ORDER = ["setup", "capture", "values", "run", "analysis", "pointers", "serve"]


def load_worker(directory=WORKER):
    script = "".join(open(os.path.join(directory, name + ".py"), encoding="utf-8").read() for name in ORDER)
    assert script.rstrip().endswith("main()"), "the worker script ends with main()"
    script = script.rstrip()[: -len("main()")]
    namespace = {"__name__": "stencila_worker"}
    argv = sys.argv
    sys.argv = ["worker", str(os.getpid()), "0", str(256 << 20), str(10**9), str(1 << 30)]
    try:
        exec(compile(script, "worker.py", "exec"), namespace)
    finally:
        sys.argv = argv
    namespace["MAX_REPLY"] = 256 << 20
    return namespace


def cases():
    yield "list(range(10**4))", list(range(10**4))
    yield "list(range(10**5))", list(range(10**5))
    yield "list(range(10**6))", list(range(10**6))
    yield "'x' * 10**7", "x" * 10**7
    floats = [i / 7 for i in range(10**6)]
    for i in range(0, 10**6, 1000):
        floats[i] = float("nan")
    yield "10**6 floats, 1000 NaN", floats
    yield "10**5 strings", ["item %d" % i for i in range(10**5)]
    yield "[[i, i/2, str(i)] ...] 10**5", [[i, i / 2, str(i)] for i in range(10**5)]
    yield "10**5 records {i, f, s}", [{"i": i, "f": i / 2, "s": str(i)} for i in range(10**5)]
    try:
        import numpy
    except ImportError:
        print("numpy is not installed: numpy rows skipped")
        return
    yield "numpy int64 10**6", numpy.arange(10**6, dtype="int64")
    yield "numpy float64 10**6", numpy.arange(10**6, dtype="float64") / 7
    try:
        import pandas
    except ImportError:
        print("pandas is not installed: pandas rows skipped")
        return
    yield "DataFrame 10**5 x 5", frame(numpy, pandas, 10**5)
    yield "DataFrame 10**4 x 5", frame(numpy, pandas, 10**4)


def frame(numpy, pandas, rows):
    f = numpy.arange(rows) / 3.0
    f[::100] = numpy.nan
    return pandas.DataFrame({
        "i": numpy.arange(rows),
        "f": f,
        "s": ["name %d" % i for i in range(rows)],
        "b": numpy.arange(rows) % 2 == 0,
        "t": pandas.date_range("2020-01-01", periods=rows, freq="min"),
    })


def reply(worker, value):
    """The reply's bytes as the worker sends them: one buffer (before issue 9) or the
    buffers written one after another (`encode_buffers`)."""
    packed = worker["pack_or_pointer"](value)
    frame = {"id": 1, "result": {"messages": [], "value": packed}}
    if "encode_buffers" in worker:
        return worker["encode_buffers"](frame)
    return [worker["encode"](frame)]


def main():
    profile = "--profile" in sys.argv
    repeat = 5
    if "--repeat" in sys.argv:
        repeat = int(sys.argv[sys.argv.index("--repeat") + 1])
    directory = WORKER
    if "--worker" in sys.argv:
        directory = sys.argv[sys.argv.index("--worker") + 1]
    worker = load_worker(directory)
    print("%-32s %10s %10s %12s" % ("value", "wall ms", "cpu ms", "reply bytes"))
    for name, value in cases():
        best = cpu = None
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            data = reply(worker, value)
            elapsed, used = time.perf_counter() - start, time.process_time() - start_cpu
            best = elapsed if best is None else min(best, elapsed)
            cpu = used if cpu is None else min(cpu, used)
        size = sum(memoryview(part).nbytes for part in data)
        print("%-32s %10.1f %10.1f %12d" % (name, best * 1000, cpu * 1000, size))
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            reply(worker, value)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(6)


if __name__ == "__main__":
    main()
