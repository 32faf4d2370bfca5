// The host's console (PROTOCOL.md section 12): types and live contexts with their
// state, polled; an editor per context (Ctrl+Enter runs); outputs rendered. Plain
// JavaScript served from the binary under a strict Content-Security-Policy: no
// inline script or style, no framework, no build step.
'use strict';

const POLL_MS = 1500;
const PAGE_ROWS = 20;
const FETCH_ROWS = 100;

// The ticket has done its job once the page's response set the cookie; keep it out
// of the address bar, the history and any bookmark.
if (new URLSearchParams(location.search).has('ticket')) {
  history.replaceState(null, '', location.pathname + location.hash);
}

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

class HttpError extends Error {}

// Calls the host; errors come back in the JSON form (section 4).
async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = text; }
  if (!response.ok) {
    const message = json && json.error ? `${json.error}: ${json.details}` : `${response.status} ${text}`;
    throw new HttpError(message);
  }
  return json;
}

function setStatus(text, isError) {
  $('status').textContent = text;
  $('status').className = isError ? 'status error' : 'status';
}

function notice(text) {
  $('notice').textContent = text || '';
  $('notice').hidden = !text;
}

// The language a context runs, from its type (and the kernel for Jupyter).
function language(typeName, state) {
  const known = { PythonContext: 'Python', SqliteContext: 'SQL', NodeContext: 'JavaScript' };
  if (state && state.language) return String(state.language);
  if (state && state.kernel) return `Jupyter: ${state.kernel}`;
  if (known[typeName]) return known[typeName];
  return String(typeName || '').replace(/Context$/, '');
}

function when(seconds) {
  if (seconds == null) return '—';
  const date = new Date(seconds * 1000);
  return date.toLocaleTimeString();
}

// ---- types ----

let typesShown = '';

function renderTypes(types) {
  const key = JSON.stringify(types);
  if (key === typesShown) return;
  typesShown = key;
  $('types').replaceChildren(...Object.values(types).map((type) => {
    const button = el('button', { type: 'button', class: 'create', 'data-type': type.name, text: `New ${type.name}` });
    button.disabled = !type.available;
    const label = el('span', { class: type.available ? '' : 'unavailable',
      text: type.available ? language(type.name) : `${language(type.name)} (unavailable${type.reason ? ': ' + type.reason : ''})` });
    // A type that lists kernels (JupyterContext) needs one chosen: its create option.
    const kernels = Object.entries(type.kernels || {});
    if (kernels.length === 0) {
      button.addEventListener('click', () => create(type.name, {}));
      return el('li', {}, label, button);
    }
    const picker = el('select', { class: 'kernel', 'aria-label': `${type.name} kernel` },
      ...kernels.map(([name, spec]) => el('option', { value: name, text: spec.displayName || name })));
    button.addEventListener('click', () => create(type.name, { kernel: picker.value }));
    return el('li', {}, label, picker, button);
  }));
}

async function create(typeName, options) {
  try {
    const name = await call('POST', '/' + encodeURIComponent(typeName), options);
    await refresh();
    const card = cards.get(name);
    if (card) card.editor.focus();
  } catch (error) { notice(error.message); }
}

// ---- contexts ----

const cards = new Map();

function card(name) {
  if (cards.has(name)) return cards.get(name);
  const node = $('context-template').content.firstElementChild.cloneNode(true);
  node.dataset.name = name;
  const q = (selector) => node.querySelector(selector);
  const entry = { node, editor: q('.editor'), outputs: q('.outputs'), running: 0 };
  q('.context-name').textContent = name;
  entry.editor.value = '';
  entry.editor.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run(name);
    }
  });
  q('.run').addEventListener('click', () => run(name));
  q('.interrupt').addEventListener('click', () => method(name, 'interrupt'));
  q('.restart').addEventListener('click', () => method(name, 'restart'));
  q('.delete').addEventListener('click', () => remove(name));
  cards.set(name, entry);
  $('contexts').append(node);
  return entry;
}

function showState(entry, state) {
  const q = (selector) => entry.node.querySelector(selector);
  q('.language').textContent = language(state.type, state) + (state.interpreter ? ` · ${state.interpreter}` : '');
  const busy = q('.busy');
  busy.textContent = state.busy ? 'busy' : 'idle';
  busy.classList.toggle('is-busy', !!state.busy);
  q('.pid').textContent = state.pid == null ? '—' : String(state.pid);
  q('.last-used').textContent = when(state.lastUsed);
  q('.cull-at').textContent = state.cullAt == null ? 'never' : when(state.cullAt);
}

async function method(name, methodName) {
  try {
    await call('PUT', `/${encodeURIComponent(name)}!${methodName}`, {});
    if (methodName === 'restart') cards.get(name)?.outputs.prepend(note('Restarted: a fresh namespace.'));
    refresh();
  } catch (error) { notice(error.message); }
}

async function remove(name) {
  try {
    await call('DELETE', '/' + encodeURIComponent(name));
    forget(name);
    refresh();
  } catch (error) { notice(error.message); }
}

function forget(name) {
  const entry = cards.get(name);
  if (entry) entry.node.remove();
  cards.delete(name);
}

function note(text) {
  return el('div', { class: 'run-output' }, el('div', { class: 'meta', text }));
}

// One run's output area. Messages and the value are appended as they arrive, so a
// live event stream (section 10) can feed the same `add*` calls as a whole result.
class RunOutput {
  constructor(outputs) {
    this.started = performance.now();
    this.meta = el('div', { class: 'meta', text: 'running…' });
    this.body = el('div', { class: 'body' });
    this.node = el('div', { class: 'run-output' }, this.meta, this.body);
    outputs.prepend(this.node);
  }
  addMessage(message) {
    const where = message.line != null
      ? ` (line ${message.line}${message.column != null ? `, column ${message.column}` : ''})` : '';
    const kind = message.type || 'error';
    const text = kind === 'stdout' || kind === 'stderr' ? message.message : `${message.message}${where}`;
    // Consecutive printed output of one stream joins one block, as a terminal shows it.
    const last = this.body.lastElementChild;
    if ((kind === 'stdout' || kind === 'stderr') && last && last.classList.contains(kind)) {
      last.textContent += text;
      return;
    }
    this.body.append(el('pre', { class: `message ${kind}`, text }));
  }
  addValue(value) {
    if (value == null) return;
    this.body.append(el('div', { class: 'value' }, renderValue(value)));
  }
  done(failed) {
    const ms = Math.round(performance.now() - this.started);
    this.meta.textContent = `${failed ? 'failed' : 'done'} in ${ms} ms`;
  }
}

async function run(name) {
  const entry = cards.get(name);
  if (!entry) return;
  const code = entry.editor.value;
  const output = new RunOutput(entry.outputs);
  entry.running += 1;
  refresh();
  try {
    const result = await call('PUT', `/${encodeURIComponent(name)}!execute`, { code });
    for (const message of result.messages || []) output.addMessage(message);
    output.addValue(result.value);
    output.done(false);
  } catch (error) {
    output.addMessage({ type: 'error', message: error.message });
    output.done(true);
  } finally {
    entry.running -= 1;
    refresh();
  }
}

// ---- values ----

function renderValue(value) {
  switch (value.type) {
    case 'table': return tableView(value.data, null);
    case 'pointer': return pointerView(value);
    case 'image': {
      const img = el('img', { alt: 'image output' });
      if (typeof value.src === 'string' && /^data:image\//.test(value.src)) img.src = value.src;
      return img;
    }
    case 'string': return el('pre', { class: 'string', text: value.data });
    case 'null': return el('pre', { text: 'null' });
    case 'boolean': case 'integer': case 'number':
      return el('pre', { text: String(value.data) });
    case 'array': case 'object':
      return el('pre', { text: JSON.stringify(value.data, null, 2) });
    default:
      return el('pre', { text: value.data !== undefined ? `${value.type}: ${typeof value.data === 'string' ? value.data : JSON.stringify(value.data)}` : JSON.stringify(value, null, 2) });
  }
}

// A table's columns as rows, `start` onwards.
function rowsOf(data, start, count) {
  const columns = data.columns || [];
  const length = columns.reduce((n, c) => Math.max(n, (c.values || []).length), 0);
  const rows = [];
  for (let i = start; i < Math.min(length, start + count); i += 1) {
    rows.push(columns.map((c) => (c.values || [])[i]));
  }
  return { columns, rows, length };
}

function cell(v) {
  const td = el('td', { text: v == null ? '' : (typeof v === 'object' ? JSON.stringify(v) : String(v)) });
  if (typeof v === 'number') td.className = 'number';
  return td;
}

// A table paged PAGE_ROWS at a time. `remote` (for pointers) fetches pages on demand:
// remote(offset, limit) -> table data; `total` its row count.
function tableView(data, remote, total) {
  const wrap = el('div', { class: 'table' });
  let page = 0;
  let cache = { offset: 0, data };
  const draw = async () => {
    const start = page * PAGE_ROWS;
    let shown;
    let length;
    if (remote) {
      length = total;
      if (start < cache.offset || start + PAGE_ROWS > cache.offset + rowsOf(cache.data, 0, Infinity).length) {
        const fetched = await remote(start, FETCH_ROWS);
        cache = { offset: start, data: fetched };
      }
      shown = rowsOf(cache.data, start - cache.offset, PAGE_ROWS);
    } else {
      shown = rowsOf(data, start, PAGE_ROWS);
      length = shown.length;
    }
    const head = el('tr', {}, ...shown.columns.map((c) => el('th', { text: c.name, title: c.type || '' })));
    const body = shown.rows.map((row) => el('tr', {}, ...row.map(cell)));
    const pages = Math.max(1, Math.ceil(length / PAGE_ROWS));
    const prev = el('button', { type: 'button', class: 'prev', text: '‹ Prev' });
    const next = el('button', { type: 'button', class: 'next', text: 'Next ›' });
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    prev.addEventListener('click', () => { page -= 1; draw(); });
    next.addEventListener('click', () => { page += 1; draw(); });
    const info = el('span', { text: `rows ${length ? start + 1 : 0}–${Math.min(length, start + PAGE_ROWS)} of ${length}` });
    wrap.replaceChildren(el('table', {}, el('thead', {}, head), el('tbody', {}, ...body)),
      pages > 1 || remote ? el('div', { class: 'pager' }, prev, info, next) : el('div', { class: 'pager' }, info));
  };
  draw().catch((error) => wrap.append(el('pre', { class: 'error', text: error.message })));
  return wrap;
}

// A value too large to send inline (section 9): its preview, and its pages fetched
// from the instance that holds it when asked.
function pointerView(pointer) {
  const wrap = el('div', { class: 'pointer' });
  const label = el('div', { class: 'meta', text: `${pointer.valueType || 'value'} '${pointer.name}' in ${pointer.instance}: ${pointer.rows ?? '?'} rows` });
  const preview = pointer.preview && pointer.preview.data ? tableView(pointer.preview.data, null) : el('span');
  const more = el('button', { type: 'button', class: 'fetch', text: 'Fetch all rows' });
  more.addEventListener('click', () => {
    const remote = async (offset, limit) => {
      const result = await call('PUT', `/${encodeURIComponent(pointer.instance)}!fetch`, { name: pointer.name, offset, limit });
      return result.data;
    };
    wrap.replaceChildren(label, tableView({ columns: [] }, remote, pointer.rows || 0));
  });
  wrap.append(label, preview, more);
  return wrap;
}

// ---- polling ----

let refreshing = null;

async function refreshNow() {
  try {
    const manifest = await call('GET', '/manifest');
    renderTypes(manifest.types || {});
    if (!manifest.instances) {
      setStatus('Not signed in', true);
      notice('Open the URL with ?ticket=… that the host printed at start to use this console.');
      return;
    }
    notice('');
    const names = manifest.instances;
    for (const name of [...cards.keys()]) if (!names.includes(name)) forget(name);
    const states = await Promise.all(names.map((name) =>
      call('GET', '/' + encodeURIComponent(name)).catch(() => null)));
    names.forEach((name, i) => { if (states[i]) showState(card(name), states[i]); });
    $('empty').hidden = names.length > 0;
    setStatus(`${manifest.stencila ? 'stencila ' + manifest.stencila.version : ''} · ${names.length} context${names.length === 1 ? '' : 's'} · updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setStatus(`Cannot reach the host: ${error.message}`, true);
  }
}

// One refresh at a time; a request for another while one runs is served by it.
function refresh() {
  if (!refreshing) refreshing = refreshNow().finally(() => { refreshing = null; });
  return refreshing;
}

refresh();
setInterval(refresh, POLL_MS);
