// The NodeContext worker: runs JavaScript sent by a Stencila host in a persistent
// global scope.
//
// Started by the host as `node -e <this script> <host pid>`. It speaks one JSON
// object per line (see the framing in worker.rs) on private descriptors reopened from
// the original stdin/stdout; before any user code runs, fd 0 is pointed at /dev/null
// and fds 1/2 at unlinked temporary files, so nothing user code does (console.log,
// process.stdout.write, fs.writeSync(1, ...), child processes) can reach the
// protocol channel. What it writes is captured and returned as stdout/stderr
// messages.
//
// Code runs through V8's REPL mode (the inspector's `Runtime.evaluate` with
// `replMode`), as in a browser console: `let`/`const` can be declared again by a
// later cell, `await` works at the top level, and the completion value of the code
// is its value. The synchronous part of an evaluation runs inside
// `vm.runInThisContext(..., {breakOnSigint: true})`, so SIGINT stops a busy loop
// there. A busy loop after an `await` runs in a microtask, out of that reach: a
// helper thread, woken by a `/bin/sh` child that traps the same SIGINT (signals
// reach only the main thread of node), then ends the running JavaScript through
// the inspector (`Runtime.terminateExecution`).
// Everything is inside one function, so none of this script's names are globals
// that user code could see or `list` would show.
(function stencilaWorker() {
'use strict';

const fs = require('fs');
const inspector = require('inspector');
const net = require('net');
const os = require('os');
const path = require('path');
const util = require('util');
const vm = require('vm');
const { Writable } = require('stream');
const { Worker } = require('worker_threads');

// Per stream and per execute; the rest is counted and reported as omitted.
const OUTPUT_CAP = 1 << 20;
// Alternating tiny writes to both streams could otherwise make millions of messages.
const MAX_CHUNKS = 10000;
// Nesting kept when packing; deeper values become their string form.
const MAX_DEPTH = 64;
// The longest string form sent for a value that has no JSON form.
const REPR_CAP = 100000;
// How long the helper thread waits for the main thread to take an interrupt itself
// before it ends the running JavaScript.
const TERMINATE_AFTER_MS = 300;
const CELL_URL = 'stencila-cell-';
const INTERRUPTED = 'Interrupted: execution was interrupted';
const TAKE = Symbol.for('stencila.take');
const SET_VALUE = Symbol.for('stencila.setValue');
const IDENTIFIER = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200C\u200D]*$/u;

// Kept before user code runs, so that user code rebinding globals cannot break the
// protocol.
const stringify = JSON.stringify;
const parse = JSON.parse;
const writeSync = fs.writeSync;
const hostPid = Number(process.argv[process.argv.length - 1]);
// The inline limit (--max-inline), passed before the host's pid.
const MAX_INLINE_ROWS = Number(process.argv[process.argv.length - 3]) || 10000;
const MAX_INLINE_BYTES = Number(process.argv[process.argv.length - 2]) || 8 * 1024 * 1024;
const baseline = new Set(Object.getOwnPropertyNames(globalThis));

class ArgumentError extends Error {}

// ---------------------------------------------------------------------------
// Descriptors: private protocol channel, captured fds 1 and 2.

function reopen(fd, flags) {
  try {
    return fs.openSync(`/proc/self/fd/${fd}`, flags);
  } catch (_) {
    return null;
  }
}

function captureFile(name) {
  const file = path.join(os.tmpdir(), `stencila-node-${process.pid}-${name}`);
  const fd = fs.openSync(file, 'a+', 0o600);
  fs.unlinkSync(file);
  return fd;
}

// Reopened, then the originals replaced: the lowest free descriptor is the one just
// closed, so each open lands on 0, 1 and 2 in turn.
const PROTO_IN = reopen(0, 'r');
const PROTO_OUT = reopen(1, 'a');
const LOG_FD = reopen(2, 'a');
let OUT_FD = 1;
let ERR_FD = 2;
// False where /proc could not reopen the pipes: then fds 0-2 stay the channel and
// only JavaScript-level output is captured.
const REDIRECTED = PROTO_IN !== null && PROTO_OUT !== null && LOG_FD !== null;
if (REDIRECTED) {
  fs.closeSync(0);
  fs.openSync('/dev/null', 'r');
  fs.closeSync(1);
  OUT_FD = captureFile('stdout');
  fs.closeSync(2);
  ERR_FD = captureFile('stderr');
}
const protoOut = PROTO_OUT === null ? 1 : PROTO_OUT;
const logFd = LOG_FD === null ? 2 : LOG_FD;

function log(text) {
  try {
    writeSync(logFd, `stencila node worker: ${text}\n`);
  } catch (_) {
    // Nowhere left to say it.
  }
}

// ---------------------------------------------------------------------------
// Output capture

// Live output: what an execute writes is also queued as it is kept, and sent to the
// host as event frames `{"id": N, "event": {"type": "stdout", "text": ...}}` while the
// code runs (whenever it yields to the event loop): at once after a quiet spell, then
// at most every LIVE_INTERVAL ms, in pieces of at most LIVE_CHUNK characters. The
// rest goes before the reply, whose messages still hold all of it.
const LIVE = [];
const LIVE_INTERVAL = 50;
const LIVE_CHUNK = 1 << 16;
let liveId = null; // the execute whose output is streamed now
let liveTimer = null;
let liveLast = 0;

function queueLive(stream, text) {
  LIVE.push([stream, text]);
  if (liveTimer === null && liveId !== null) {
    liveTimer = setTimeout(flushLive, Math.max(0, liveLast + LIVE_INTERVAL - Date.now()));
  }
}

function flushLive() {
  if (liveTimer !== null) clearTimeout(liveTimer);
  liveTimer = null;
  liveLast = Date.now();
  if (liveId === null) return; // kept for the next execute, whose messages hold it
  const runs = [];
  for (const [stream, text] of LIVE.splice(0)) {
    const last = runs[runs.length - 1];
    if (last && last[0] === stream) last[1].push(text);
    else runs.push([stream, [text]]);
  }
  for (const [stream, parts] of runs) {
    const text = parts.join('');
    for (let start = 0; start < text.length; start += LIVE_CHUNK) {
      send({ id: liveId, event: { type: stream, text: text.slice(start, start + LIVE_CHUNK) } });
    }
  }
}

class Output {
  constructor() {
    this.reset();
  }

  reset() {
    // Items are [kind, parts]: stdout/stderr parts are coalesced.
    this.items = [];
    this.used = { stdout: 0, stderr: 0 };
    this.omitted = { stdout: 0, stderr: 0 };
  }

  add(stream, text) {
    if (!text) return;
    let size = Buffer.byteLength(text);
    const room = OUTPUT_CAP - this.used[stream];
    if (size > room) {
      this.omitted[stream] += size - Math.max(room, 0);
      if (room <= 0) return;
      text = Buffer.from(text).subarray(0, room).toString().replace(/\uFFFD$/, '');
      size = room;
    }
    const items = this.items;
    if (items.length && items[items.length - 1][0] === stream) {
      items[items.length - 1][1].push(text);
    } else if (items.length < MAX_CHUNKS) {
      items.push([stream, [text]]);
    } else {
      this.omitted[stream] += size;
      return;
    }
    this.used[stream] += size;
    queueLive(stream, text);
  }

  messages() {
    const messages = this.items.map(([kind, parts]) => ({ type: kind, message: parts.join('') }));
    for (const stream of ['stdout', 'stderr']) {
      if (this.omitted[stream]) {
        messages.push({
          type: 'warning',
          message: `[output truncated: ${this.omitted[stream]} bytes of ${stream} omitted]`,
        });
      }
    }
    this.reset();
    return messages;
  }
}

const OUTPUT = new Output();

function chunkText(chunk, encoding) {
  if (typeof chunk === 'string') return chunk;
  try {
    return Buffer.from(chunk).toString(typeof encoding === 'string' ? encoding : 'utf8');
  } catch (_) {
    return String(chunk);
  }
}

// What user code writes to fds 1 and 2 directly (fs.writeSync, child processes).
function collectFdOutput() {
  if (!REDIRECTED) return;
  for (const [stream, fd] of [['stdout', OUT_FD], ['stderr', ERR_FD]]) {
    try {
      const size = fs.fstatSync(fd).size;
      if (size > 0) {
        const length = Math.min(size, OUTPUT_CAP);
        const buffer = Buffer.alloc(length);
        const read = fs.readSync(fd, buffer, 0, length, 0);
        OUTPUT.add(stream, buffer.subarray(0, read).toString());
        if (size > length) OUTPUT.omitted[stream] += size - length;
        fs.ftruncateSync(fd, 0);
      }
    } catch (error) {
      log(`could not read captured ${stream}: ${error}`);
    }
  }
}

function captureStreams() {
  const writer = (stream) =>
    function write(chunk, encoding, callback) {
      OUTPUT.add(stream, chunkText(chunk, encoding));
      const done = typeof encoding === 'function' ? encoding : callback;
      if (typeof done === 'function') process.nextTick(done);
      return true;
    };
  // Written synchronously: the callback runs at once, so nothing is ever buffered.
  const consoleStream = (stream) =>
    new Writable({
      decodeStrings: false,
      write(chunk, encoding, callback) {
        OUTPUT.add(stream, chunkText(chunk, encoding));
        callback();
      },
    });
  const captured = new console.Console({
    stdout: consoleStream('stdout'),
    stderr: consoleStream('stderr'),
    colorMode: false,
  });
  // The global console object is kept (code may hold it); its methods are replaced.
  for (const key of Object.keys(captured)) {
    if (typeof captured[key] === 'function') console[key] = captured[key];
  }
  process.stdout.write = writer('stdout');
  process.stderr.write = writer('stderr');
  Object.defineProperty(process.stdin, 'read', { value: () => null, configurable: true });
}

// ---------------------------------------------------------------------------
// Values (PROTOCOL.md sections 6 and 8)

const SAFE_INT = Number.MAX_SAFE_INTEGER;

function shortString(value) {
  let text;
  try {
    text = typeof value === 'function' ? Function.prototype.toString.call(value) : util.inspect(value, { depth: 2, breakLength: Infinity, maxArrayLength: 100, maxStringLength: REPR_CAP });
  } catch (_) {
    text = `<${typeName(value)}>`;
  }
  if (typeof text !== 'string') text = `<${typeName(value)}>`;
  return text.length > REPR_CAP ? `${text.slice(0, REPR_CAP)}...` : text;
}

function typeName(value) {
  if (value === null) return 'null';
  if (typeof value !== 'object' && typeof value !== 'function') return typeof value;
  try {
    const constructor = value.constructor;
    if (typeof constructor === 'function' && typeof constructor.name === 'string' && constructor.name) {
      return constructor.name;
    }
  } catch (_) {
    // A hostile getter: fall through.
  }
  return typeof value === 'function' ? 'Function' : 'Object';
}

function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isTypedArray(value) {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

function integerData(value) {
  // A number or a bigint known to be an integer.
  if (typeof value === 'bigint') {
    return value >= -BigInt(SAFE_INT) && value <= BigInt(SAFE_INT) ? Number(value) : value.toString();
  }
  return value;
}

function dateString(date) {
  const time = date.getTime();
  return Number.isNaN(time) ? null : date.toISOString();
}

function native(value, depth, active) {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return integerData(value);
    case 'symbol':
    case 'function':
      return shortString(value);
    default:
  }
  if (value instanceof Date) return dateString(value);
  if (depth >= MAX_DEPTH) return shortString(value);
  const array = Array.isArray(value) || isTypedArray(value) || value instanceof Set;
  const map = value instanceof Map;
  if (!array && !map && !isPlainObject(value)) return shortString(value);
  if (active.has(value)) return array ? '[...]' : '{...}';
  active.add(value);
  try {
    if (array) return Array.from(value, (item) => native(item, depth + 1, active));
    const object = {};
    const entries = map ? value.entries() : Object.entries(value);
    for (const [key, item] of entries) object[keyText(key)] = native(item, depth + 1, active);
    return object;
  } finally {
    active.delete(value);
  }
}

function keyText(key) {
  return typeof key === 'string' ? key : shortString(key);
}

// The column names of an array of plain objects that all have the same keys (a
// table); else null.
function tableNames(rows) {
  if (!Array.isArray(rows) || rows.length === 0 || !isPlainObject(rows[0])) return null;
  const names = Object.keys(rows[0]);
  if (names.length === 0) return null;
  const wanted = new Set(names);
  for (const row of rows) {
    if (!isPlainObject(row)) return null;
    const keys = Object.keys(row);
    if (keys.length !== names.length || !keys.every((key) => wanted.has(key))) return null;
  }
  return names;
}

// An array of plain objects that all have the same keys, as a table; else null.
function tableOf(rows) {
  const names = tableNames(rows);
  if (names === null) return null;
  const columns = names.map((name) => {
    const values = rows.map((row) => native(row[name], 1, new Set()));
    return { name, type: columnType(rows.map((row) => row[name])), values };
  });
  return { type: 'table', data: { columns } };
}

function columnType(values) {
  const present = values.filter((value) => value !== null && value !== undefined);
  const all = (test) => present.every(test);
  if (present.length && all((v) => typeof v === 'boolean')) return 'boolean';
  if (present.length && all((v) => typeof v === 'bigint' || Number.isSafeInteger(v))) return 'integer';
  if (present.length && all((v) => typeof v === 'bigint' || typeof v === 'number')) return 'number';
  if (all((v) => typeof v === 'string' || v instanceof Date)) return 'string';
  return 'object';
}

function pack(value) {
  try {
    return packUnguarded(value);
  } catch (error) {
    return { type: typeName(value), data: shortString(value), error: describe(error) };
  }
}

function packUnguarded(value) {
  if (value === null || value === undefined) return { type: 'null', data: null };
  switch (typeof value) {
    case 'boolean':
      return { type: 'boolean', data: value };
    case 'number':
      if (Number.isSafeInteger(value)) return { type: 'integer', data: value };
      return { type: 'number', data: Number.isFinite(value) ? value : null };
    case 'bigint':
      return { type: 'integer', data: integerData(value) };
    case 'string':
      return { type: 'string', data: value };
    case 'symbol':
      return { type: 'symbol', data: shortString(value) };
    case 'function':
      return { type: typeName(value), data: shortString(value) };
    default:
  }
  if (value instanceof Date) return { type: 'string', data: dateString(value) };
  if (Array.isArray(value)) return tableOf(value) || { type: 'array', data: native(value, 0, new Set()) };
  if (isTypedArray(value) || value instanceof Set) return { type: 'array', data: native(value, 0, new Set()) };
  if (value instanceof Map || isPlainObject(value)) return { type: 'object', data: native(value, 0, new Set()) };
  return { type: typeName(value), data: shortString(value) };
}

// The type `pack` would give, without packing (for `list`).
function packedType(value) {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'boolean':
    case 'string':
    case 'symbol':
      return typeof value;
    case 'number':
      return Number.isSafeInteger(value) ? 'integer' : 'number';
    case 'bigint':
      return 'integer';
    case 'function':
      return typeName(value);
    default:
  }
  if (value instanceof Date) return 'string';
  if (Array.isArray(value)) return tableOf(value) ? 'table' : 'array';
  if (isTypedArray(value) || value instanceof Set) return 'array';
  if (value instanceof Map || isPlainObject(value)) return 'object';
  return typeName(value);
}

function unpack(packed, what) {
  if (!isPlainObject(packed) || typeof packed.type !== 'string') {
    throw new ArgumentError(`${what} must be a packed value such as {"type": "integer", "data": 1}`);
  }
  const kind = packed.type;
  const data = packed.data;
  const wrong = (expected) =>
    new ArgumentError(`${what}: a value of type '${kind}' needs ${expected} as its data`);
  switch (kind) {
    case 'null':
      return null;
    case 'boolean':
      if (typeof data !== 'boolean') throw wrong('true or false');
      return data;
    case 'integer':
      if (typeof data === 'number' && Number.isInteger(data)) return data;
      if (typeof data === 'string' && /^[+-]?\d+$/.test(data.trim())) {
        const big = BigInt(data.trim());
        return big >= -BigInt(SAFE_INT) && big <= BigInt(SAFE_INT) ? Number(big) : big;
      }
      throw wrong('an integer (or its decimal string)');
    case 'number':
      if (data === null) return NaN;
      if (typeof data !== 'number') throw wrong('a number');
      return data;
    case 'string':
      if (typeof data !== 'string') throw wrong('a string');
      return data;
    case 'array':
      if (!Array.isArray(data)) throw wrong('an array');
      return data;
    case 'object':
      if (!isPlainObject(data)) throw wrong('an object');
      return data;
    case 'bytes':
      if (typeof data !== 'string') throw wrong('a base64 string');
      return Buffer.from(data, 'base64');
    case 'table': {
      const columns = isPlainObject(data) ? data.columns : undefined;
      const valid =
        Array.isArray(columns) &&
        columns.every((c) => isPlainObject(c) && typeof c.name === 'string' && Array.isArray(c.values));
      if (!valid) throw wrong('{"columns": [{"name": ..., "values": [...]}, ...]}');
      const length = Math.max(0, ...columns.map((c) => c.values.length));
      return Array.from({ length }, (_, index) => {
        const row = {};
        for (const column of columns) {
          const item = column.values[index];
          row[column.name] = item === undefined ? null : item;
        }
        return row;
      });
    }
    default:
      throw new ArgumentError(`${what}: cannot unpack a value of type '${kind}'`);
  }
}

// ---------------------------------------------------------------------------
// Evaluation through the inspector

const session = new inspector.Session();
session.connect();

// Posts a command whose callback the in-process session calls synchronously.
function postSync(method, params) {
  let reply = null;
  session.post(method, params, (error, result) => {
    reply = { error, result };
  });
  if (reply === null) throw new Error(`${method} did not answer synchronously`);
  if (reply.error) throw reply.error;
  return reply.result;
}

let taken;
Object.defineProperty(globalThis, TAKE, {
  value: (value) => {
    taken = value;
  },
});

// The JavaScript value a RemoteObject stands for.
function valueOf(remote) {
  if (remote.objectId) {
    taken = undefined;
    postSync('Runtime.callFunctionOn', {
      functionDeclaration: `function () { 'use strict'; globalThis[Symbol.for('stencila.take')](this); }`,
      objectId: remote.objectId,
    });
    const value = taken;
    taken = undefined; // not kept alive here
    return value;
  }
  if (remote.type === 'undefined') return undefined;
  if ('unserializableValue' in remote) {
    const text = remote.unserializableValue;
    if (remote.type === 'bigint') return BigInt(text.slice(0, -1));
    return Number(text); // NaN, Infinity, -Infinity, -0
  }
  return remote.value;
}

let cells = 0;
// The evaluation waiting for its reply: {settle}; interrupts settle it early.
let pending = null;
// Shared with the helper thread: 1 while user code may run.
const state = new Int32Array(new SharedArrayBuffer(8));
const RUNNING = 0;
const EPOCH = 1;

const POST = Symbol.for('stencila.post');

function evaluate(code) {
  cells += 1;
  const cell = cells;
  return new Promise((resolve) => {
    let done = false;
    const settle = (outcome) => {
      if (done) return;
      done = true;
      pending = null;
      Atomics.store(state, RUNNING, 0);
      resolve(outcome);
    };
    pending = { settle };
    const post = () =>
      session.post(
        'Runtime.evaluate',
        {
          expression: `${code}\n//# sourceURL=${CELL_URL}${cell}`,
          replMode: true,
          awaitPromise: true,
          objectGroup: 'stencila',
        },
        (error, result) => settle({ error, result, cell }),
      );
    Object.defineProperty(globalThis, POST, { value: post, configurable: true, writable: true });
    Atomics.add(state, EPOCH, 1);
    Atomics.store(state, RUNNING, 1);
    try {
      vm.runInThisContext("globalThis[Symbol.for('stencila.post')]()", { breakOnSigint: true });
    } catch (error) {
      // "Script execution was interrupted by `SIGINT`", else a fault of this worker.
      settle(/interrupted/.test(String(error && error.message)) ? { interrupted: true } : { error });
    } finally {
      delete globalThis[POST];
    }
  });
}

function awaitPromise(remote) {
  return new Promise((resolve) => {
    let done = false;
    const settle = (outcome) => {
      if (done) return;
      done = true;
      pending = null;
      Atomics.store(state, RUNNING, 0);
      resolve(outcome);
    };
    pending = { settle };
    Atomics.add(state, EPOCH, 1);
    Atomics.store(state, RUNNING, 1);
    session.post('Runtime.awaitPromise', { promiseObjectId: remote.objectId }, (error, result) =>
      settle({ error, result }),
    );
  });
}

function describe(error) {
  try {
    if (error instanceof Error) return `${error.name}: ${error.message}`;
  } catch (_) {
    // fall through
  }
  return `Uncaught ${shortString(error)}`;
}

// Where in the user's cells an error was thrown: the first frame in the current
// cell, else in any cell (a function from an earlier cell), from the stack text.
function locate(stack, cell) {
  if (typeof stack !== 'string') return null;
  const frame = new RegExp(`${CELL_URL}(\\d+):(\\d+):(\\d+)`, 'g');
  let first = null;
  for (const match of stack.matchAll(frame)) {
    const where = { cell: Number(match[1]), line: Number(match[2]), column: Number(match[3]) - 1 };
    if (where.cell === cell) return where;
    if (first === null) first = where;
  }
  return first;
}

// A position past the user's code (the parser reached the end of input, in the
// line this worker appends) is the end of the user's last line.
function clamp(code, where) {
  const lines = code.split('\n');
  if (where.line > lines.length) return { line: lines.length, column: lines[lines.length - 1].length };
  return where;
}

function errorMessage(details, cell, code) {
  const remote = details.exception || {};
  let error;
  try {
    error = valueOf(remote);
  } catch (_) {
    error = remote.description;
  }
  const message = { type: 'error', message: describe(error) };
  let stack;
  try {
    stack = error instanceof Error ? error.stack : undefined;
  } catch (_) {
    stack = undefined;
  }
  const where = locate(stack || remote.description, cell);
  if (where) {
    message.line = where.line;
    message.column = where.column;
  } else if (details.scriptId && typeof details.lineNumber === 'number') {
    // A syntax error: the position the parser reports, in this cell.
    const clamped = clamp(code, { line: details.lineNumber + 1, column: details.columnNumber });
    message.line = clamped.line;
    message.column = clamped.column;
  }
  return message;
}

// True for the inspector's answer to an evaluation the helper thread ended.
function terminated(outcome) {
  return Boolean(outcome.error) && /Execution was terminated/.test(String(outcome.error.message));
}

async function run(code) {
  let outcome = await evaluate(code);
  if (outcome.interrupted || terminated(outcome)) return { failure: { type: 'error', message: INTERRUPTED } };
  if (outcome.error) throw outcome.error;
  let { result, exceptionDetails } = outcome.result;
  if (!exceptionDetails && result.subtype === 'promise' && result.objectId) {
    // A Promise as the last value is awaited (PROTOCOL.md section 8).
    const cell = outcome.cell;
    outcome = await awaitPromise(result);
    if (outcome.interrupted || terminated(outcome)) return { failure: { type: 'error', message: INTERRUPTED } };
    if (outcome.error) throw outcome.error;
    ({ result, exceptionDetails } = outcome.result);
    outcome.cell = cell;
  }
  if (exceptionDetails) return { failure: errorMessage(exceptionDetails, outcome.cell, code) };
  return { value: valueOf(result) };
}

// ---------------------------------------------------------------------------
// Variables

function checkName(name, what) {
  if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
    throw new ArgumentError(`${what} needs \`name\`, a JavaScript identifier`);
  }
}

function lexicalNames() {
  try {
    return postSync('Runtime.globalLexicalScopeNames', {}).names;
  } catch (_) {
    return [];
  }
}

function hasVariable(name) {
  return lexicalNames().includes(name) || Object.prototype.hasOwnProperty.call(globalThis, name);
}

// Reads a variable as user code would see it (global `let`/`const` included).
function readVariable(name) {
  return vm.runInThisContext(name);
}

function post(method, params) {
  return new Promise((resolve, reject) =>
    session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
  );
}

// Assigns a variable; a global `const` is declared again (as REPL mode allows).
async function writeVariable(name, value) {
  Object.defineProperty(globalThis, SET_VALUE, { value, configurable: true, writable: true });
  try {
    try {
      vm.runInThisContext(`${name} = globalThis[Symbol.for('stencila.setValue')]`);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      const reply = await post('Runtime.evaluate', {
        expression: `const ${name} = globalThis[Symbol.for('stencila.setValue')]`,
        replMode: true,
        awaitPromise: true,
      });
      if (reply.exceptionDetails) {
        const why = reply.exceptionDetails.exception ? reply.exceptionDetails.exception.description : 'failed';
        throw new ArgumentError(`could not set '${name}': ${String(why).split('\n')[0]}`);
      }
    }
  } catch (error) {
    if (error instanceof ArgumentError) throw error;
    throw new ArgumentError(`could not set '${name}': ${describe(error)}`);
  } finally {
    delete globalThis[SET_VALUE];
  }
}

function userNames() {
  const names = new Set(lexicalNames());
  for (const name of Object.getOwnPropertyNames(globalThis)) {
    if (!baseline.has(name)) names.add(name);
  }
  return [...names].filter((name) => !name.startsWith('_'));
}

// ---------------------------------------------------------------------------
// Methods

const CALL = Symbol.for('stencila.call');

class Interrupted extends Error {}

// Runs `work` where SIGINT can stop it: packing a value can run user code (getters,
// custom inspect functions) that never ends.
function interruptible(work) {
  let result;
  Object.defineProperty(globalThis, CALL, {
    value: () => {
      result = work();
    },
    configurable: true,
  });
  try {
    vm.runInThisContext("globalThis[Symbol.for('stencila.call')]()", { breakOnSigint: true });
  } catch (error) {
    if (/Script execution was interrupted/.test(String(error && error.message))) throw new Interrupted();
    throw error;
  } finally {
    delete globalThis[CALL];
  }
  return result;
}

async function doExecute(args) {
  const code = args.code;
  if (typeof code !== 'string') throw new ArgumentError('execute needs `code`, a string');
  const inputs = args.inputs;
  if (inputs !== undefined && inputs !== null) {
    if (!isPlainObject(inputs)) throw new ArgumentError('`inputs` must be an object of names to packed values');
    const values = [];
    for (const [name, packed] of Object.entries(inputs)) {
      checkName(name, 'each input');
      values.push([name, unpack(packed, `input '${name}'`)]);
    }
    for (const [name, value] of values) await writeVariable(name, value);
  }
  // From here what is written goes to the host as it comes (see LIVE).
  liveId = current ? current.id : null;
  if (LIVE.length) flushLive();
  // Output written since the last call (a timer, a late rejection) is kept and
  // reported by this one.
  collectFdOutput();
  const outcome = await run(code);
  let packed = null;
  if (!outcome.failure && outcome.value !== undefined) {
    try {
      packed = interruptible(() => packOrPointer(outcome.value));
    } catch (error) {
      if (!(error instanceof Interrupted)) throw error;
      outcome.failure = { type: 'error', message: `${INTERRUPTED} while converting the value` };
    }
  }
  collectFdOutput();
  const messages = OUTPUT.messages();
  if (outcome.failure) messages.push(outcome.failure);
  releaseObjects();
  return { messages, value: packed };
}

function releaseObjects() {
  try {
    postSync('Runtime.releaseObjectGroup', { objectGroup: 'stencila' });
  } catch (_) {
    // Nothing held.
  }
}

function doList() {
  const variables = [];
  for (const name of userNames()) {
    let type;
    try {
      type = packedType(readVariable(name));
    } catch (_) {
      continue; // declared but not yet initialised (a `let` whose cell threw)
    }
    variables.push({ name, type });
  }
  return variables;
}

function doGet(args) {
  const name = args.name;
  checkName(name, 'get');
  if (!hasVariable(name)) throw new ArgumentError(`no variable named '${name}'`);
  let value;
  try {
    value = readVariable(name);
  } catch (error) {
    throw new ArgumentError(`could not get '${name}': ${describe(error)}`);
  }
  return packOrPointer(value, name);
}

async function doSet(args) {
  const name = args.name;
  checkName(name, 'set');
  if (!('value' in args)) throw new ArgumentError('set needs `value`, a packed value');
  await writeVariable(name, unpack(args.value, '`value`'));
  return null;
}

// ---------------------------------------------------------------------------
// Pointers (PROTOCOL.md section 9): a table (an array of row objects) over the inline
// limit stays in the worker, under the variable that holds it or a hidden holder, and
// is answered with a pointer; `fetch` pages through it. The host adds `instance`.

const PREVIEW_ROWS = 20;
const FETCH_LIMIT = 1000;
// Hidden holders kept (values no variable names); older ones are dropped.
const HOLDERS_KEPT = 10;
const holders = new Map();
let holderCount = 0;

function packOrPointer(value, name) {
  if (tableNames(value) === null) return pack(value);
  const rows = value.length;
  if (rows <= MAX_INLINE_ROWS) {
    const packed = pack(value);
    if (Buffer.byteLength(stringify(packed)) <= MAX_INLINE_BYTES) return packed;
  }
  const kept = name || variableHolding(value) || hold(value);
  return { type: 'pointer', name: kept, valueType: 'table', rows, preview: pack(value.slice(0, PREVIEW_ROWS)) };
}

function variableHolding(value) {
  for (const name of userNames()) {
    try {
      if (readVariable(name) === value) return name;
    } catch (_) {
      // declared but not initialised
    }
  }
  return null;
}

function hold(value) {
  holderCount += 1;
  const name = `_stencila_value${holderCount}`;
  holders.set(name, value);
  while (holders.size > HOLDERS_KEPT) holders.delete(holders.keys().next().value);
  return name;
}

function doFetch(args) {
  const name = args.name;
  if (typeof name !== 'string') throw new ArgumentError('fetch needs `name`, a string');
  const offset = args.offset === undefined ? 0 : args.offset;
  const limit = args.limit === undefined ? FETCH_LIMIT : args.limit;
  if (![offset, limit].every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new ArgumentError('fetch: `offset` and `limit` must be whole numbers, 0 or more');
  }
  let value;
  if (holders.has(name)) value = holders.get(name);
  else if (IDENTIFIER.test(name) && hasVariable(name)) value = readVariable(name);
  else {
    throw new ArgumentError(
      `no value named '${name}' (values no variable holds are kept for the ${HOLDERS_KEPT} most recent pointers)`,
    );
  }
  const names = tableNames(value);
  if (names === null) throw new ArgumentError(`'${name}' is not a table (an array of row objects with the same keys)`);
  const page = value.slice(offset, offset + limit);
  if (page.length) return tableOf(page);
  const columns = names.map((column) => ({ name: column, type: columnType([value[0][column]]), values: [] }));
  return { type: 'table', data: { columns } };
}

// End of the pointers section.
// ---------------------------------------------------------------------------

const METHODS = { execute: doExecute, list: doList, get: doGet, set: doSet, fetch: doFetch };

async function handle(request) {
  const method = Object.prototype.hasOwnProperty.call(METHODS, request.method) ? METHODS[request.method] : null;
  if (method === null) throw new ArgumentError(`no method named '${request.method}'`);
  const args = isPlainObject(request.args) ? request.args : {};
  if (method === doExecute) return method(args);
  try {
    return await interruptible(() => method(args));
  } catch (error) {
    if (error instanceof Interrupted) throw new ArgumentError('the call was interrupted before it finished');
    throw error;
  }
}

function send(frame) {
  let line;
  try {
    line = stringify(frame);
  } catch (error) {
    line = stringify({ id: frame.id, error: `the reply could not be encoded: ${describe(error)}`, internal: true });
  }
  const data = Buffer.from(`${line}\n`);
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(protoOut, data, offset, data.length - offset);
    } catch (error) {
      if (error.code === 'EAGAIN') continue;
      throw error;
    }
  }
}

async function answer(request) {
  const id = request.id;
  try {
    return { id, result: await handle(request) };
  } catch (error) {
    if (error instanceof ArgumentError) return { id, error: error.message };
    log(`a request failed: ${error && error.stack}`);
    return { id, error: `the Node.js worker failed: ${describe(error)}`, internal: true };
  }
}

// ---------------------------------------------------------------------------
// Requests, one at a time

const queue = [];
// The request being answered, and the run of the loop answering it: an interrupt
// that had to end JavaScript by force may have ended that loop's promise chain too,
// and then answers for it (see `answerTerminated`).
let current = null;
let generation = 0;
let serving = false;

async function serveQueue() {
  if (serving) return;
  serving = true;
  const mine = generation;
  while (queue.length && mine === generation) {
    const line = queue.shift();
    let request;
    try {
      request = parse(line);
      if (request === null || typeof request !== 'object' || !('id' in request)) throw new Error('no `id`');
    } catch (error) {
      log(`skipping a malformed request: ${describe(error)}`);
      continue;
    }
    const call = { id: request.id, answered: false };
    current = call;
    const frame = await answer(request);
    if (call.answered) return;
    call.answered = true;
    current = null;
    sendOrEnd(frame);
  }
  if (mine === generation) serving = false;
}

function sendOrEnd(frame) {
  try {
    if (liveId !== null && frame.id === liveId) {
      // The rest of the execute's output goes before its reply.
      flushLive();
      liveId = null;
    }
    send(frame);
  } catch (error) {
    endAll();
  }
}

// The helper thread ended a busy loop with `Runtime.terminateExecution`. That can
// also end the promise chain of the call in flight, so the call is answered here
// (once) and the request loop starts again.
function answerTerminated() {
  interruptPending();
  setImmediate(() => {
    const call = current;
    if (call === null || call.answered) return;
    call.answered = true;
    current = null;
    pending = null;
    Atomics.store(state, RUNNING, 0);
    collectFdOutput();
    const messages = OUTPUT.messages();
    messages.push({ type: 'error', message: INTERRUPTED });
    releaseObjects();
    sendOrEnd({ id: call.id, result: { messages, value: null } });
    generation += 1;
    serving = false;
    serveQueue();
  });
}

function readRequests() {
  const input = PROTO_IN === null ? process.stdin : new net.Socket({ fd: PROTO_IN, readable: true, writable: false });
  let buffered = '';
  input.setEncoding('utf8');
  input.on('data', (chunk) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      queue.push(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
    serveQueue();
  });
  // The host closed the channel: it is gone or done with this worker.
  input.on('end', endAll);
  input.on('error', endAll);
}

// Ends this worker and everything it started (its process group).
function endAll() {
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch (_) {
    // Not a group leader.
  }
  process.exit(0);
}

// ---------------------------------------------------------------------------
// Interrupts, the host's life and stray errors

function interruptPending() {
  if (pending !== null) pending.settle({ interrupted: true });
}

// Signals reach only this (main) thread, and only when it is free. A SIGINT while
// idle is dropped; while an evaluation awaits, it stops the waiting.
process.on('SIGINT', interruptPending);

// Errors from callbacks user code left behind (timers, promises nobody awaits) must
// not end the worker: they are reported as stderr output.
process.on('uncaughtException', (error) => {
  OUTPUT.add('stderr', `Uncaught ${describe(error)}\n`);
});
process.on('unhandledRejection', (reason) => {
  OUTPUT.add('stderr', `Unhandled promise rejection: ${describe(reason)}\n`);
});

// The helper thread: watches the host (also while user code keeps this thread busy)
// and ends a busy loop that SIGINT could not reach.
const HELPER = `
const { workerData, parentPort } = require('worker_threads');
const { Session } = require('inspector');
const { spawn } = require('child_process');
const { state, hostPid, terminateAfter } = workerData;
const endAll = () => { try { process.kill(-process.pid, 'SIGKILL'); } catch (_) {} process.kill(process.pid, 'SIGKILL'); };
setInterval(() => { if (process.ppid !== hostPid) endAll(); }, 1000);
let session = null;
try { session = new Session(); session.connectToMainThread(); } catch (_) { session = null; }
let trap = null;
try {
  trap = spawn('/bin/sh', ['-c', 'trap "echo i" INT; while :; do sleep 3600 & p=$!; wait $p; kill $p 2>/dev/null; done'], { stdio: ['ignore', 'pipe', 'ignore'] });
  trap.on('error', () => {});
  trap.unref();
} catch (_) { trap = null; }
if (trap && session) {
  trap.stdout.on('data', () => {
    if (Atomics.load(state, 0) !== 1) return;
    const epoch = Atomics.load(state, 1);
    setTimeout(() => {
      // Still the same evaluation, still running: the main thread is busy.
      if (Atomics.load(state, 0) === 1 && Atomics.load(state, 1) === epoch) {
        session.post('Runtime.terminateExecution', () => parentPort.postMessage('terminated'));
      }
    }, terminateAfter);
  });
}
`;

function startHelper() {
  try {
    const helper = new Worker(HELPER, {
      eval: true,
      workerData: { state, hostPid, terminateAfter: TERMINATE_AFTER_MS },
      stdout: true,
    });
    helper.on('message', answerTerminated);
    helper.on('error', (error) => log(`the helper thread failed: ${describe(error)}`));
    helper.unref();
  } catch (error) {
    log(`no helper thread: ${describe(error)}`);
  }
}

function main() {
  if (Number.isFinite(hostPid) && hostPid > 1 && process.ppid !== hostPid) endAll();
  Object.defineProperty(globalThis, 'require', { value: require, configurable: true, writable: true, enumerable: false });
  baseline.add('require');
  captureStreams();
  startHelper();
  readRequests();
  send({ ready: true, pid: process.pid, node: process.versions.node });
}

main();
})();
