/*
 * Nimbus console: one page, plain JavaScript, no framework, no build step (docs/console.md).
 *
 * Structure, top to bottom:
 *   1. helpers   $(), el()/svgEl() to build nodes, setText() that writes only on change, number/byte/age
 *                formats, fromDynamo() (DynamoDB JSON to plain values).
 *   2. auth      the token arrives as #token=… once: kept in sessionStorage, removed from the address bar;
 *                without one, the "open the URL nimbus up printed" screen.
 *   3. api()     fetch() of api/… (relative to the page, so any console.path works) with
 *                "Authorization: Bearer"; an error answer {code, message} becomes an ApiError, shown as
 *                "CODE: message" in the alert region by showError()/guard().
 *   4. router    hash routes (#cluster, #flow, …): shows one <section>, calls its page's enter()/leave().
 *   5. live      api/events read with fetch() streaming (EventSource cannot send the header), SSE parsed
 *                by hand, reconnect with backoff, the live/reconnecting indicator.
 *   6. pages     cluster, flow (diagram + Chart), orders, queue, functions, topic, lab: each an object that
 *                owns its section's DOM, with enter(), and onCluster()/onFlow() for live data.
 *   7. boot
 * Live data (one cluster and one flow event a second) updates existing nodes in place: O(processes) and
 * O(stages) work per event, no re-layout of the page.
 */
(() => {
  'use strict';

  // ---------------------------------------------------------------------------------------- 1. helpers

  const $ = (id) => document.getElementById(id);
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** An element with attributes (class, text, data-*, on<event> handlers, …) and children. */
  function el(tag, props, ...children) {
    return fill(document.createElement(tag), props, children);
  }

  function svgEl(tag, props, ...children) {
    return fill(document.createElementNS(SVG_NS, tag), props, children);
  }

  function fill(node, props, children) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key === 'className' ? 'class' : key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  /** Writes text only when it changed (live updates touch the DOM as little as they can). */
  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function setAttr(node, name, value) {
    const text = String(value);
    if (node.getAttribute(name) !== text) node.setAttribute(name, text);
  }

  const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

  function isNumber(n) { return typeof n === 'number' && Number.isFinite(n); }

  function fmtInt(n) { return isNumber(n) ? integer.format(n) : '—'; }

  function fmtRate(n) {
    if (!isNumber(n)) return '—';
    return n >= 10 || n === 0 ? integer.format(n) : decimal.format(n);
  }

  function fmtBytes(n) {
    if (!isNumber(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i === 0 ? n : decimal.format(n)} ${units[i]}`;
  }

  function fmtMillis(ms) {
    if (!isNumber(ms)) return '—';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${decimal.format(ms / 1000)} s`;
    return `${decimal.format(ms / 60000)} min`;
  }

  function fmtTime(value) {
    const ms = toMillis(value);
    return ms === null ? '—' : new Date(ms).toLocaleString();
  }

  /** Milliseconds since the epoch from a number (ms, or s when small), a numeric string or an ISO date. */
  function toMillis(value) {
    if (value === null || value === undefined || value === '') return null;
    const n = Number(value);
    if (Number.isFinite(n)) return n < 1e11 ? n * 1000 : n;
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? null : parsed;
  }

  function shortId(id, length = 8) {
    return typeof id === 'string' && id.length > length ? id.slice(0, length) : (id || '—');
  }

  /** A DynamoDB attribute value ({"S": "…"}, {"M": {…}}, …) as a plain value. */
  function fromDynamo(value) {
    if (value === null || typeof value !== 'object') return value;
    const [type, x] = Object.entries(value)[0] || [];
    switch (type) {
      case 'S': case 'B': case 'BOOL': case 'SS': case 'BS': return x;
      case 'N': return Number(x);
      case 'NS': return x.map(Number);
      case 'NULL': return null;
      case 'L': return x.map(fromDynamo);
      case 'M': return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, fromDynamo(v)]));
      default: return value;
    }
  }

  function display(value) {
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  function delay(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  // ------------------------------------------------------------------------------------------- 2. auth

  const TOKEN_KEY = 'nimbus-console-token';
  let token = null;

  /** Moves a #token=… fragment into sessionStorage and out of the address bar; returns the token. */
  function takeToken() {
    const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      history.replaceState(null, '', `${location.pathname}${location.search}#cluster`);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  /** The "open the URL" screen. A refused token stays in sessionStorage: reloading tries it again. */
  function showNoToken(reason) {
    token = null;
    live.stop();
    if (router.current && pages[router.current].leave) pages[router.current].leave();
    router.current = null;
    $('nav').hidden = true;
    for (const section of document.querySelectorAll('main > section')) section.hidden = section.id !== 'no-token';
    setText($('no-token-reason'), reason || '');
  }

  function useToken(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    token = value;
    $('nav').hidden = false;
    hideError();
    live.start();
    flow.load();
    router.show();
  }

  // -------------------------------------------------------------------------------------------- 3. api

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  const AUTH_CODES = new Set(['MissingAuthenticationToken', 'InvalidToken']);

  /** JSON from the console API; throws ApiError for an error answer or no answer. */
  async function api(path, { method = 'GET', body, signal } = {}) {
    const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
    const init = { method, headers, signal, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`api/${path}`, init);
    } catch (error) {
      if (error.name === 'AbortError') throw error;
      throw new ApiError('NetworkError', `the gateway did not answer (${error.message})`, 0);
    }
    return readAnswer(response);
  }

  async function readAnswer(response) {
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      const code = (data && data.code) || `HTTP${response.status}`;
      const error = new ApiError(code, (data && data.message) || text.slice(0, 300) || response.statusText, response.status);
      if (AUTH_CODES.has(code)) showNoToken(`${code}: ${error.message}`);
      throw error;
    }
    if (data === null && text) throw new ApiError('InvalidResponse', 'the answer is not JSON', response.status);
    return data;
  }

  function showError(error) {
    if (error && error.name === 'AbortError') return;
    const text = error instanceof ApiError ? `${error.code}: ${error.message}` : `Error: ${error && error.message ? error.message : error}`;
    setText($('alert-text'), text);
    $('alert').hidden = false;
  }

  function hideError() { $('alert').hidden = true; }

  /** Runs an async action; its error goes to the alert region. Returns its result (undefined on error). */
  async function guard(action) {
    try {
      return await action();
    } catch (error) {
      showError(error);
      return undefined;
    }
  }

  /** A form's submit (or a button's click) handler that disables `button` while `action` runs. */
  function busy(button, action) {
    return async (event) => {
      if (event) event.preventDefault();
      if (button.disabled) return;
      button.disabled = true;
      try {
        await guard(action);
      } finally {
        button.disabled = false;
      }
    };
  }

  // ----------------------------------------------------------------------------------------- 4. router

  const router = {
    routes: ['cluster', 'flow', 'orders', 'queue', 'functions', 'topic', 'lab'],
    current: null,

    name() {
      const name = location.hash.slice(1);
      return this.routes.includes(name) ? name : 'cluster';
    },

    show(focus = false) {
      if (!token) return;
      const name = this.name();
      if (this.current && this.current !== name && pages[this.current].leave) pages[this.current].leave();
      for (const route of this.routes) $(`page-${route}`).hidden = route !== name;
      $('no-token').hidden = true;
      for (const link of document.querySelectorAll('[data-route]')) {
        if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
        else link.removeAttribute('aria-current');
      }
      document.title = `${$(`${name}-h`).textContent} · Nimbus console`;
      const entering = this.current !== name;
      this.current = name;
      if (entering) pages[name].enter();
      if (focus) $(`${name}-h`).focus();
    },
  };

  // ------------------------------------------------------------------------------------------- 5. live

  /** Parses a text/event-stream incrementally; calls onEvent(name, data) for each complete event. */
  function sseParser(onEvent) {
    let buffer = '';
    let name = '';
    let data = [];
    return (chunk) => {
      buffer += chunk;
      const lines = buffer.split(/\r?\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (data.length) onEvent(name || 'message', data.join('\n'));
          name = '';
          data = [];
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'event') name = value;
          else if (field === 'data') data.push(value);
        }
      }
    };
  }

  const live = {
    running: false,
    generation: 0, // a stop or a new start ends the older loop
    controller: null,
    backoff: 1000,
    silenceTimer: 0,

    start() {
      if (this.running) return;
      this.running = true;
      this.backoff = 1000;
      this.loop(++this.generation);
    },

    stop() {
      this.running = false;
      this.generation += 1;
      if (this.controller) this.controller.abort();
      this.indicate('off', 'offline');
    },

    indicate(state, text) {
      const node = $('live');
      setAttr(node, 'data-state', state);
      setText(node, text);
    },

    async loop(generation) {
      while (generation === this.generation) {
        this.indicate('connecting', 'connecting…');
        try {
          await this.connect();
        } catch (error) {
          if (error instanceof ApiError && AUTH_CODES.has(error.code)) return;
        }
        if (generation !== this.generation) return;
        const wait = this.backoff;
        this.backoff = Math.min(this.backoff * 2, 15000);
        this.indicate('reconnecting', `reconnecting in ${Math.round(wait / 1000)} s`);
        await delay(wait);
      }
    },

    /** One connection: resolves when the stream ends, is silent too long, or fails. */
    async connect() {
      this.controller = new AbortController();
      const signal = this.controller.signal;
      const response = await fetch('api/events', {
        headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' }, signal, cache: 'no-store',
      });
      if (!response.ok) return readAnswer(response);
      this.indicate('live', 'live');
      flow.load(); // fill the charts' gap while we were away
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parse = sseParser((name, data) => this.dispatch(name, data));
      this.watch();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return undefined;
          this.watch();
          parse(decoder.decode(value, { stream: true }));
        }
      } finally {
        clearTimeout(this.silenceTimer);
        this.controller.abort();
      }
    },

    /** Events come once a second: 6 s of silence means a dead connection. */
    watch() {
      clearTimeout(this.silenceTimer);
      const controller = this.controller;
      this.silenceTimer = setTimeout(() => controller.abort(), 6000);
    },

    dispatch(name, data) {
      let value;
      try { value = JSON.parse(data); } catch { return; }
      this.backoff = 1000;
      if (name === 'cluster') cluster.onCluster(value);
      else if (name === 'flow') {
        flow.onFlow(value);
        queue.onFlow(value);
      }
    },
  };

  // ---------------------------------------------------------------------------------------- 6. pages

  // ---- cluster

  const WORKER_KINDS = ['ingest-worker', 'stream-worker'];

  const cluster = {
    rows: new Map(), // process name → { tr, cells }
    scales: new Map(), // worker kind → { input, count }
    summary: '',

    enter() {
      guard(async () => this.onCluster(await api('cluster')));
    },

    onCluster(status) {
      const processes = (status && status.processes) || [];
      this.updateRows(processes);
      this.updateScales(processes);
      const ready = processes.filter((p) => p.ready).length;
      const summary = `${processes.length} processes, ${ready} ready · supervisor pid ${status.supervisorPID ?? '—'}`;
      if (summary !== this.summary) setText($('cluster-summary'), (this.summary = summary));
    },

    updateRows(processes) {
      const body = $('process-rows');
      const seen = new Set();
      processes.forEach((process, index) => {
        seen.add(process.name);
        let row = this.rows.get(process.name);
        if (!row) {
          row = this.makeRow(process.name);
          this.rows.set(process.name, row);
        }
        if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
        this.fillRow(row, process);
      });
      for (const [name, row] of this.rows) {
        if (!seen.has(name)) {
          row.tr.remove();
          this.rows.delete(name);
        }
      }
    },

    makeRow(name) {
      const cells = {};
      const cell = (key, className) => (cells[key] = el('td', { class: className }));
      const kill = el('button', { type: 'button', class: 'danger', 'data-testid': `kill-${name}`, 'aria-label': `Kill ${name}`, text: 'Kill' });
      const restart = el('button', { type: 'button', 'data-testid': `restart-${name}`, 'aria-label': `Restart ${name}`, text: 'Restart' });
      kill.addEventListener('click', busy(kill, () => this.kill(name)));
      restart.addEventListener('click', busy(restart, () => this.restart(name)));
      cells.state = el('span');
      cells.reason = el('span', { class: 'reason' });
      cells.ready = el('span', { class: 'badge none' });
      const tr = el('tr', { 'data-testid': `process-row-${name}`, 'data-name': name },
        el('th', { scope: 'row', text: name }),
        cell('kind'),
        el('td', { class: 'c-state' }, cells.state, cells.reason),
        el('td', { class: 'c-ready' }, cells.ready),
        cell('pid', 'num c-pid'), cell('restarts', 'num c-restarts'), cell('incarnation', 'mono c-incarnation'),
        cell('heartbeat', 'num c-heartbeat'), cell('cpu', 'num c-cpu'), cell('rss', 'num c-rss'),
        el('td', { class: 'actions' }, kill, ' ', restart));
      return { tr, cells };
    },

    fillRow({ tr, cells }, p) {
      setText(cells.kind, p.kind || '—');
      setText(cells.state, p.stateDescription || p.state || '—');
      setText(cells.reason, p.ready === false && p.notReadyReason ? `not ready: ${p.notReadyReason}` : '');
      const [label, tone] = p.ready === true ? ['ready', 'ok'] : p.ready === false ? ['not ready', 'bad'] : ['—', 'none'];
      setText(cells.ready, label);
      setAttr(cells.ready, 'class', `badge ${tone}`);
      setText(cells.pid, p.pid ?? '—');
      setText(cells.restarts, fmtInt(p.restarts));
      setText(cells.incarnation, shortId(p.incarnation));
      setAttr(cells.incarnation, 'title', p.incarnation || '');
      setAttr(tr, 'data-incarnation', p.incarnation || '');
      setAttr(tr, 'data-state', p.state || '');
      setText(cells.heartbeat, isNumber(p.lastHeartbeatMillisecondsAgo) ? `${fmtMillis(p.lastHeartbeatMillisecondsAgo)} ago` : '—');
      setText(cells.cpu, isNumber(p.cpuPercent) ? `${decimal.format(p.cpuPercent)} %` : '—');
      setText(cells.rss, fmtBytes(p.rssBytes));
    },

    updateScales(processes) {
      const counts = new Map(WORKER_KINDS.map((kind) => [kind, 0]));
      for (const p of processes) {
        if (p.kind && p.kind.endsWith('-worker')) counts.set(p.kind, (counts.get(p.kind) || 0) + 1);
      }
      for (const [kind, count] of counts) {
        const scale = this.scales.get(kind) || this.makeScale(kind);
        setText(scale.count, `running: ${count}`);
        if (!scale.dirty && document.activeElement !== scale.input) scale.input.value = String(count);
      }
    },

    makeScale(kind) {
      const id = `scale-input-${kind}`;
      const input = el('input', { id, type: 'number', min: 0, max: 32, value: 1, 'data-testid': `scale-${kind}` });
      const apply = el('button', { type: 'submit', 'data-testid': `scale-apply-${kind}`, text: 'Apply' });
      const count = el('span', { class: 'muted' });
      const form = el('form', { 'aria-label': `Scale ${kind}` },
        el('label', { for: id, text: `${kind} instances` }), input, apply, count);
      const scale = { input, count, dirty: false };
      input.addEventListener('input', () => { scale.dirty = true; });
      form.addEventListener('submit', busy(apply, () => this.scale(kind, scale)));
      $('scale-controls').append(form);
      this.scales.set(kind, scale);
      return scale;
    },

    async scale(kind, scale) {
      const count = Number(scale.input.value);
      if (!Number.isInteger(count) || count < 0) throw new ApiError('InvalidParameterValue', `the number of ${kind} instances must be a whole number ≥ 0`, 0);
      const answer = await api('cluster/scale', { method: 'POST', body: { kind, count } });
      scale.dirty = false;
      setText($('cluster-status'), `${answer.kind || kind} scaled to ${answer.count ?? count}`);
    },

    async kill(name) {
      if (!window.confirm(`Kill ${name} (SIGKILL)? The supervisor will restart it.`)) return;
      const answer = await api('cluster/kill', { method: 'POST', body: { name } });
      setText($('cluster-status'), `Killed ${answer.name || name} (pid ${answer.pid ?? '?'}); the supervisor restarts it`);
    },

    async restart(name) {
      const answer = await api('cluster/restart', { method: 'POST', body: { name } });
      setText($('cluster-status'), `Restarting ${(answer.restarting || [name]).join(', ')}`);
    },
  };

  // ---- flow: a live chart of a sliding 5-minute window

  const WINDOW_SECONDS = 300;

  /**
   * An SVG line chart over the last 5 minutes. Points are kept in data coordinates (seconds, value)
   * in each polyline's point list; one transform on their group maps them to the view, so a new
   * sample appends one point per series and drops the expired ones, and rescaling rewrites nothing.
   * Each series keeps a monotonic deque for its sliding maximum (amortized O(1) per sample).
   */
  class Chart {
    constructor(container, format) {
      this.format = format;
      this.series = new Map();
      this.svg = svgEl('svg', { viewBox: `0 0 ${WINDOW_SECONDS} 100`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
      for (const y of [25, 50, 75]) {
        this.svg.append(svgEl('line', { x1: 0, x2: WINDOW_SECONDS, y1: y, y2: y, class: 'grid-line', 'vector-effect': 'non-scaling-stroke' }));
      }
      this.group = svgEl('g');
      this.svg.append(this.group);
      this.ymaxLabel = el('span', { class: 'ymax' });
      this.legend = el('ul', { class: 'legend', 'aria-label': 'Current values' });
      container.append(el('figure', { class: 'chart' },
        el('div', { class: 'plot' }, this.svg, this.ymaxLabel, el('span', { class: 'ymin', text: '0' })),
        el('div', { class: 'xaxis', 'aria-hidden': 'true' }, el('span', { text: '−5 min' }), el('span', { text: 'now' })),
        this.legend));
      this.ymax = 0;
    }

    ensure(key, label) {
      let series = this.series.get(key);
      if (series) return series;
      const tone = `s${this.series.size % 8}`;
      const line = svgEl('polyline', { class: tone, 'vector-effect': 'non-scaling-stroke', 'data-series': key });
      this.group.append(line);
      const value = el('span', { class: 'value', text: '—' });
      this.legend.append(el('li', { 'data-series': key }, el('span', { class: `swatch ${tone}`, 'aria-hidden': 'true' }), `${label} `, value));
      series = { line, value, maxima: [] };
      this.series.set(key, series);
      return series;
    }

    reset() {
      for (const series of this.series.values()) {
        series.line.points.clear();
        series.maxima = [];
        setText(series.value, '—');
      }
    }

    /** Adds one sample: `values` maps series key → number (missing keys add no point). */
    push(t, values) {
      const oldest = t - WINDOW_SECONDS;
      let top = 0;
      for (const [key, series] of this.series) {
        const v = values.get(key);
        if (isNumber(v)) this.append(series, t, Math.max(0, v));
        this.expire(series, oldest);
        setText(series.value, isNumber(v) ? this.format(v) : '—');
        if (series.maxima.length) top = Math.max(top, series.maxima[0].v);
      }
      this.rescale(t, top);
    }

    append(series, t, v) {
      const point = this.svg.createSVGPoint();
      point.x = t;
      point.y = v;
      series.line.points.appendItem(point);
      const maxima = series.maxima;
      while (maxima.length && maxima[maxima.length - 1].v <= v) maxima.pop();
      maxima.push({ t, v });
    }

    expire(series, oldest) {
      const points = series.line.points;
      while (points.numberOfItems && points.getItem(0).x < oldest) points.removeItem(0);
      while (series.maxima.length && series.maxima[0].t < oldest) series.maxima.shift();
    }

    rescale(t, top) {
      const ymax = niceCeiling(top * 1.1);
      if (ymax !== this.ymax) {
        this.ymax = ymax;
        setText(this.ymaxLabel, this.format(ymax));
      }
      // (t, v) → (t − (now − 300), 98 − v · 94 / ymax)
      setAttr(this.group, 'transform', `translate(${(WINDOW_SECONDS - t).toFixed(3)} 98) scale(1 ${(-94 / ymax).toPrecision(6)})`);
    }
  }

  /** A round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at least `n`, and at least 1. */
  function niceCeiling(n) {
    if (!(n > 1)) return 1;
    const power = 10 ** Math.floor(Math.log10(n));
    for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8]) if (step * power >= n) return step * power;
    return 10 * power;
  }

  // ---- flow: the pipeline diagram

  const STAGES = [
    { id: 'gateway', title: 'gateway', sub: 'POC-API', x: 20, y: 20 },
    { id: 'queue', title: 'queue', sub: 'POC-Queue', x: 280, y: 20 },
    { id: 'ingest-worker', title: 'ingest worker', sub: 'POC-Lambda-1', x: 540, y: 20 },
    { id: 'table', title: 'table', sub: 'orders', x: 800, y: 20 },
    { id: 'stream', title: 'stream', sub: 'orders stream', x: 800, y: 200 },
    { id: 'stream-worker', title: 'stream worker', sub: 'POC-Lambda-2', x: 540, y: 200 },
    { id: 'topic', title: 'topic', sub: 'POC-Topic', x: 280, y: 200 },
    { id: 'subscribers', title: 'subscribers', sub: 'email', x: 20, y: 200 },
  ];
  const BOX = { w: 170, h: 84 };

  /** The backlog lines under each stage from a sample's `stages`. */
  function backlogLines(id, stages) {
    const q = stages.queue || {};
    switch (id) {
      case 'queue': return [`visible ${fmtInt(q.visible)} · in flight ${fmtInt(q.inFlight)}`, `DLQ ${fmtInt(q.dlq)}${q.delayed ? ` · delayed ${fmtInt(q.delayed)}` : ''}`];
      case 'stream': return [`lag ${fmtInt((stages.stream || {}).lag)}`, ''];
      case 'topic': return [`outbox ${fmtInt((stages.notifier || {}).outbox)}`, ''];
      default: return ['', ''];
    }
  }

  function buildDiagram(container) {
    const svg = svgEl('svg', { viewBox: '0 0 990 300', role: 'img', 'aria-labelledby': 'flow-diagram-title' },
      svgEl('title', { id: 'flow-diagram-title', text: 'The pipeline: gateway, queue, ingest worker, table, stream, stream worker, topic, subscribers' }),
      svgEl('defs', {}, svgEl('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerUnits: 'userSpaceOnUse', markerWidth: 12, markerHeight: 12, orient: 'auto' },
        svgEl('path', { d: 'M0 0L10 5L0 10z', class: 'arrowhead' }))));
    const edges = new Map();
    for (let i = 0; i + 1 < STAGES.length; i += 1) {
      const edge = drawEdge(STAGES[i], STAGES[i + 1]);
      svg.append(edge.group);
      edges.set(`${STAGES[i].id}>${STAGES[i + 1].id}`, edge);
    }
    const nodes = new Map();
    for (const stage of STAGES) {
      const node = drawNode(stage);
      svg.append(node.group);
      nodes.set(stage.id, node);
    }
    container.append(svg);
    return { edges, nodes };
  }

  function drawNode(stage) {
    const backlog = [0, 1].map((i) => svgEl('text', { x: stage.x + 10, y: stage.y + 58 + i * 16, class: 'backlog' }));
    const group = svgEl('g', { class: 'node', 'data-stage': stage.id },
      svgEl('rect', { x: stage.x, y: stage.y, width: BOX.w, height: BOX.h, rx: 8 }),
      svgEl('text', { x: stage.x + 10, y: stage.y + 22, class: 'title', text: stage.title }),
      svgEl('text', { x: stage.x + 10, y: stage.y + 39, class: 'sub', text: stage.sub }),
      ...backlog);
    return { group, backlog };
  }

  function drawEdge(from, to) {
    let line;
    let label;
    if (from.y === to.y) {
      const leftToRight = from.x < to.x;
      const y = from.y + BOX.h / 2;
      const x1 = leftToRight ? from.x + BOX.w : from.x;
      const x2 = leftToRight ? to.x : to.x + BOX.w;
      line = { x1, x2, y1: y, y2: y };
      label = { x: (x1 + x2) / 2, y: y - 8, 'text-anchor': 'middle' };
    } else {
      const x = from.x + BOX.w / 2;
      line = { x1: x, x2: x, y1: from.y + BOX.h, y2: to.y };
      label = { x: x + 10, y: (from.y + BOX.h + to.y) / 2 + 5, 'text-anchor': 'start' };
    }
    const stroke = svgEl('line', { ...line, 'marker-end': 'url(#arrow)', 'stroke-width': 2 });
    const text = svgEl('text', { ...label, text: '—/s' });
    return { group: svgEl('g', { class: 'edge', 'data-edge': `${from.id}>${to.id}` }, stroke, text), stroke, text };
  }

  const THROUGHPUT_SERIES = [
    ['gateway>queue', 'accepted'],
    ['ingest-worker>table', 'written'],
    ['stream-worker>topic', 'published'],
    ['topic>subscribers', 'delivered'],
  ];

  const flow = {
    diagram: null,
    throughput: null,
    latency: null,
    origin: null, // the first sample's time: chart x = seconds since it
    lastAt: -Infinity,
    pending: null, // live samples that arrive while the history loads

    build() {
      if (this.diagram) return;
      this.diagram = buildDiagram($('flow-diagram'));
      this.throughput = new Chart($('chart-throughput'), (v) => `${fmtRate(v)}/s`);
      for (const [key, label] of THROUGHPUT_SERIES) this.throughput.ensure(key, label);
      this.latency = new Chart($('chart-latency'), (v) => fmtMillis(v));
    },

    enter() { this.build(); },

    /**
     * The charts redrawn from the history (the last 300 samples) and the live samples that came
     * meanwhile: at start and after each reconnection, so a gap fills in.
     */
    async load() {
      if (this.pending) return;
      this.pending = [];
      try {
        const answer = await api('flow');
        const samples = [...((answer && answer.history) || []), answer, ...this.pending]
          .filter((sample) => sample && isNumber(sample.at))
          .sort((a, b) => a.at - b.at);
        this.build();
        this.reset();
        for (const sample of samples) this.add(sample);
      } catch (error) {
        if (!(error instanceof ApiError && AUTH_CODES.has(error.code))) showError(error);
      } finally {
        this.pending = null;
      }
    },

    reset() {
      this.lastAt = -Infinity;
      this.origin = null;
      this.throughput.reset();
      this.latency.reset();
    },

    /** A live sample (from the event stream). */
    onFlow(sample) {
      if (this.pending) this.pending.push(sample);
      this.add(sample);
    },

    /** One sample: O(stages) work. Older or repeated samples are ignored. */
    add(sample) {
      if (!sample) return;
      const at = isNumber(sample.at) ? sample.at : Date.now();
      if (at <= this.lastAt) return;
      this.lastAt = at;
      this.build();
      if (this.origin === null) this.origin = at;
      const t = (at - this.origin) / 1000;
      const rates = new Map();
      for (const edge of sample.edges || []) rates.set(`${edge.from}>${edge.to}`, edge.perSecond);
      this.updateDiagram(rates, sample.stages || {});
      this.throughput.push(t, rates);
      const latency = new Map();
      for (const [stage, ms] of Object.entries(sample.latencyMs || {})) {
        this.latency.ensure(stage, stage);
        latency.set(stage, ms);
      }
      this.latency.push(t, latency);
    },

    updateDiagram(rates, stages) {
      for (const [key, edge] of this.diagram.edges) {
        const rate = rates.get(key);
        setText(edge.text, `${fmtRate(rate)}/s`);
        setAttr(edge.stroke, 'stroke-width', (1.5 + Math.log10(1 + (isNumber(rate) ? rate : 0))).toFixed(1));
      }
      for (const [id, node] of this.diagram.nodes) {
        const lines = backlogLines(id, stages);
        setText(node.backlog[0], lines[0]);
        setText(node.backlog[1], lines[1]);
      }
    },
  };

  // ---- orders ("Explore items")

  const orders = {
    pages: [null], // the `next` key each page started from; the last is the current page's
    next: null,
    query: '',
    started: false,

    enter() {
      if (!this.started) {
        this.started = true;
        this.load();
      }
    },

    init() {
      $('orders-search').addEventListener('submit', (event) => {
        event.preventDefault();
        this.query = $('orders-query').value.trim();
        this.pages = [null];
        this.load();
      });
      $('orders-refresh').addEventListener('click', () => this.load());
      $('orders-next').addEventListener('click', () => {
        if (this.next === null) return;
        this.pages.push(this.next);
        this.load();
      });
      $('orders-prev').addEventListener('click', () => {
        if (this.pages.length < 2) return;
        this.pages.pop();
        this.load();
      });
    },

    async load() {
      const start = this.pages[this.pages.length - 1];
      const params = new URLSearchParams({ limit: '25' });
      if (start !== null) params.set('next', typeof start === 'string' ? start : JSON.stringify(start));
      if (this.query) params.set('orderID', this.query);
      setText($('orders-status'), 'Loading…');
      const answer = await guard(() => api(`items?${params}`));
      if (!answer) {
        setText($('orders-status'), '');
        return;
      }
      this.next = answer.next ?? null;
      this.render(answer.items || []);
      const page = this.pages.length;
      const count = answer.items ? answer.items.length : 0;
      // As in DynamoDB, the filter applies to each page scanned: a page can hold no match while later ones do.
      const more = this.query && count === 0 && this.next !== null ? '; Next scans further' : '';
      setText($('orders-status'), `Page ${page}: ${count} items returned${isNumber(answer.scanned) ? `, ${fmtInt(answer.scanned)} scanned` : ''}${this.query ? ` (orderID contains “${this.query}”)` : ''}${more}`);
      $('orders-next').disabled = this.next === null;
      $('orders-prev').disabled = page < 2;
    },

    render(items) {
      const rows = items.map((item) => {
        const plain = fromDynamo({ M: item });
        const { orderID, order, ...rest } = plain;
        const extra = Object.keys(rest).length ? el('div', { class: 'muted mono', text: JSON.stringify(rest) }) : null;
        return el('tr', { 'data-testid': `order-row-${orderID}` },
          el('th', { scope: 'row', class: 'mono', text: display(orderID) }),
          el('td', { class: 'wrap mono' }, display(order ?? ''), extra));
      });
      if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 2, class: 'muted', text: 'No items.' })));
      $('orders-rows').replaceChildren(...rows);
    },
  };

  // ---- queue

  const queue = {
    cards: null,

    enter() {
      this.build();
      this.refresh();
    },

    build() {
      if (this.cards) return;
      this.cards = { queue: this.card('queue', 'POC-Queue'), dlq: this.card('dlq', 'dead-letter queue') };
    },

    card(key, title) {
      const value = (name) => el('dd', { class: 'big', 'data-testid': `${key}-${name}`, text: '—' });
      const fields = { visible: value('visible'), inFlight: value('inFlight'), delayed: value('delayed') };
      const heading = el('h3', { text: title });
      const url = el('p', { class: 'muted mono' });
      $('queue-cards').append(el('section', { class: 'card', 'data-testid': `queue-card-${key}` }, heading, url,
        el('dl', { class: 'kv' },
          el('dt', { text: 'Messages available' }), fields.visible,
          el('dt', { text: 'Messages in flight' }), fields.inFlight,
          el('dt', { text: 'Messages delayed' }), fields.delayed)));
      return { heading, url, fields };
    },

    async refresh() {
      const answer = await guard(() => api('queue'));
      if (!answer) return;
      for (const key of ['queue', 'dlq']) {
        const data = answer[key];
        if (!data) continue;
        const card = this.cards[key];
        setText(card.heading, data.name || key);
        setText(card.url, data.url || '');
        this.setCounts(card, data.visible, data.inFlight, data.delayed);
      }
    },

    setCounts(card, visible, inFlight, delayed) {
      if (isNumber(visible)) setText(card.fields.visible, fmtInt(visible));
      if (isNumber(inFlight)) setText(card.fields.inFlight, fmtInt(inFlight));
      if (isNumber(delayed)) setText(card.fields.delayed, fmtInt(delayed));
    },

    onFlow(sample) {
      if (!this.cards || router.current !== 'queue') return;
      const q = (sample.stages && sample.stages.queue) || {};
      this.setCounts(this.cards.queue, q.visible, q.inFlight, q.delayed);
      this.setCounts(this.cards.dlq, q.dlq, undefined, undefined);
    },

    init() {
      const sendButton = document.querySelector('#queue-send button');
      $('queue-send').addEventListener('submit', busy(sendButton, async () => {
        const body = $('queue-body').value;
        if (!body) throw new ApiError('MissingParameter', 'the message body is empty', 0);
        const answer = await api('queue/send', { method: 'POST', body: { body } });
        setText($('queue-send-result'), `Message sent: ID ${answer.MessageId}, MD5 of body ${answer.MD5OfMessageBody}`);
        this.refresh();
      }));
      const pollButton = document.querySelector('#queue-poll button');
      $('queue-poll').addEventListener('submit', busy(pollButton, () => this.poll()));
    },

    async poll() {
      const max = clamp(Number($('poll-max').value), 1, 10);
      const waitSeconds = clamp(Number($('poll-wait').value), 0, 20);
      const body = { max, waitSeconds };
      if ($('poll-queue').value) body.queue = $('poll-queue').value;
      setText($('queue-poll-result'), `Polling for up to ${waitSeconds} s…`);
      try {
        const answer = await api('queue/poll', { method: 'POST', body });
        const messages = answer.messages || [];
        setText($('queue-poll-result'), `Received ${messages.length} message${messages.length === 1 ? '' : 's'}`);
        $('queue-messages').replaceChildren(...messages.map((m) => el('tr', { 'data-testid': `message-${m.MessageId}` },
          el('th', { scope: 'row', class: 'mono', text: m.MessageId }),
          el('td', { class: 'wrap mono', text: m.Body }),
          el('td', { class: 'num', text: m.ReceiveCount ?? '—' }),
          el('td', { text: fmtTime(m.SentTimestamp) }))));
        this.refresh();
      } catch (error) {
        setText($('queue-poll-result'), '');
        throw error;
      }
    },
  };

  function clamp(n, low, high) {
    return Number.isFinite(n) ? Math.min(high, Math.max(low, Math.round(n))) : low;
  }

  // ---- functions and their Test panel

  const TEMPLATE_LABELS = { sqs: 'SQS', 'dynamodb-update': 'DynamoDB-Update' };

  const functions = {
    list: [],
    templates: {},

    enter() {
      guard(async () => {
        const [answer, templates] = await Promise.all([api('functions'), api('templates')]);
        this.list = answer.functions || [];
        this.renderCards();
        if (templates && Object.keys(templates).join() !== Object.keys(this.templates).join()) {
          this.templates = templates;
          this.fillTemplateSelect();
        }
        this.fillFunctionSelect();
      });
    },

    renderCards() {
      $('function-cards').replaceChildren(...this.list.map((fn) => {
        const trigger = fn.trigger || {};
        const stats = Object.entries(fn.statistics || {}).flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: display(v) })]);
        return el('section', { class: 'card', 'data-testid': `function-${fn.name}` },
          el('h3', { text: fn.name }),
          el('dl', { class: 'kv' },
            el('dt', { text: 'worker' }), el('dd', { text: fn.worker || '—' }),
            el('dt', { text: 'runtime' }), el('dd', { text: fn.runtime || '—' }),
            el('dt', { text: 'handler' }), el('dd', { class: 'mono', text: fn.handler || '—' })),
          el('h4', { text: 'Trigger' }),
          el('dl', { class: 'kv' },
            el('dt', { text: 'source' }), el('dd', { class: 'mono', text: trigger.source || '—' }),
            el('dt', { text: 'status' }), el('dd', {}, el('span', { class: `badge ${trigger.enabled ? 'ok' : 'bad'}`, text: trigger.enabled ? 'Enabled' : 'Disabled' })),
            el('dt', { text: 'batch size' }), el('dd', { text: trigger.batchSize ?? '—' }),
            el('dt', { text: 'state' }), el('dd', { text: trigger.state || '—' })),
          el('h4', { text: 'Statistics' }),
          stats.length ? el('dl', { class: 'kv' }, stats) : el('p', { class: 'muted', text: 'None yet.' }));
      }));
    },

    fillFunctionSelect() {
      const select = $('test-function');
      const chosen = select.value;
      select.replaceChildren(...this.list.map((fn) => el('option', { value: fn.name, text: fn.worker ? `${fn.name} (${fn.worker})` : fn.name })));
      if (chosen && this.list.some((fn) => fn.name === chosen)) select.value = chosen;
      else this.pickTemplateFor(select.value);
    },

    fillTemplateSelect() {
      $('test-template').replaceChildren(...Object.keys(this.templates).map((key) => el('option', { value: key, text: TEMPLATE_LABELS[key] || key })));
      this.pickTemplateFor($('test-function').value);
    },

    /** The Lambda console's matching template: SQS for a queue-fed function, DynamoDB for the other. */
    pickTemplateFor(name) {
      const fn = this.list.find((f) => f.name === name);
      const source = String((fn && fn.trigger && fn.trigger.source) || '');
      const keys = Object.keys(this.templates);
      const key = keys.find((k) => (/sqs/i.test(source) ? /sqs/i.test(k) : /dynamo/i.test(k))) || keys[0];
      if (!key) return;
      $('test-template').value = key;
      this.showTemplate(key);
    },

    showTemplate(key) {
      if (!(key in this.templates)) return;
      $('test-event').value = JSON.stringify(this.templates[key], null, 2);
      this.markEvent('');
    },

    markEvent(problem) {
      setText($('test-event-error'), problem);
      $('test-event').setAttribute('aria-invalid', problem ? 'true' : 'false');
    },

    /** The event JSON, or null after showing why it does not parse. */
    parseEvent() {
      try {
        const event = JSON.parse($('test-event').value);
        this.markEvent('');
        return event;
      } catch (error) {
        this.markEvent(`The event is not valid JSON: ${error.message}`);
        $('test-event').focus();
        return null;
      }
    },

    init() {
      $('test-function').addEventListener('change', (event) => this.pickTemplateFor(event.target.value));
      $('test-template').addEventListener('change', (event) => this.showTemplate(event.target.value));
      $('test-event').addEventListener('input', () => {
        if ($('test-event').getAttribute('aria-invalid') === 'true') this.markEvent('');
      });
      $('test-form').addEventListener('submit', busy($('test-run'), () => this.test()));
    },

    async test() {
      const event = this.parseEvent();
      if (event === null) return;
      const name = $('test-function').value;
      if (!name) throw new ApiError('ResourceNotFoundException', 'no function to test', 0);
      const result = $('invoke-result');
      setText(result, `Running ${name}…`);
      result.className = 'result';
      $('invoke-details').hidden = true;
      let answer;
      try {
        answer = await api(`functions/${encodeURIComponent(name)}/invoke`, { method: 'POST', body: { event } });
      } catch (error) {
        setText(result, '');
        throw error;
      }
      const ok = answer.result === 'succeeded';
      setText(result, `Execution result: ${answer.result || 'unknown'}`);
      result.className = `result ${ok ? 'ok' : 'fail'}`;
      result.dataset.result = answer.result || '';
      setText($('invoke-payload'), JSON.stringify(answer.payload ?? null, null, 2));
      setText($('invoke-log'), (answer.log || []).join('\n') || '(no log lines)');
      $('invoke-details').hidden = false;
      const listing = await api('functions');
      this.list = listing.functions || this.list;
      this.renderCards();
    },
  };

  // ---- topic: subscriptions, publish, the local inbox

  const MAX_MAILS = 50;

  const topic = {
    timer: 0,
    subscriptionsSeen: '',
    inboxSeen: '',

    enter() {
      this.refresh();
      clearInterval(this.timer);
      this.timer = setInterval(() => this.refresh(), 2000);
    },

    leave() { clearInterval(this.timer); },

    refresh() {
      return Promise.all([guard(() => this.loadTopic()), guard(() => this.loadInbox())]);
    },

    async loadTopic() {
      const answer = await api('topic');
      setText($('topic-arn'), answer.topicArn || '—');
      const subscriptions = answer.subscriptions || [];
      const seen = JSON.stringify(subscriptions);
      if (seen === this.subscriptionsSeen) return;
      this.subscriptionsSeen = seen;
      const rows = subscriptions.map((s) => {
        const confirmed = s.status === 'Confirmed';
        return el('tr', { 'data-testid': `subscription-${s.Endpoint}`, 'data-status': s.status || '' },
          el('th', { scope: 'row', text: s.Endpoint || '—' }),
          el('td', { text: s.Protocol || '—' }),
          el('td', {}, el('span', { class: `badge ${confirmed ? 'ok' : 'warn'}`, 'data-testid': 'subscription-status', text: s.status || '—' })),
          el('td', { class: 'wrap mono', text: s.SubscriptionArn || '—' }));
      });
      if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 4, class: 'muted', text: 'No subscriptions yet.' })));
      $('subscription-rows').replaceChildren(...rows);
    },

    async loadInbox() {
      const answer = await api('inbox');
      const mails = answer.mails || [];
      const first = mails[0] || {};
      const seen = `${mails.length}|${first.to}|${first.date}|${first.subject}`;
      if (seen === this.inboxSeen) return;
      this.inboxSeen = seen;
      setText($('inbox-status'), mails.length > MAX_MAILS ? `${fmtInt(mails.length)} mails; the newest ${MAX_MAILS} are shown` : `${mails.length} mail${mails.length === 1 ? '' : 's'}`);
      $('inbox').replaceChildren(...mails.slice(0, MAX_MAILS).map((mail) => this.mailItem(mail)));
    },

    mailItem(mail) {
      const links = (mail.links || []).filter((url) => /^https?:\/\//i.test(url));
      return el('li', { 'data-testid': 'mail' },
        el('p', { class: 'meta' }, `To ${mail.to || '—'} · ${fmtTime(mail.date) === '—' ? (mail.date || '') : fmtTime(mail.date)}`),
        el('p', { class: 'subject', text: mail.subject || '(no subject)' }),
        links.length ? el('ul', { class: 'links', 'aria-label': 'Links in this mail' },
          links.map((url) => el('li', {}, el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'mail-link', text: url,
            onclick: () => setTimeout(() => this.refresh(), 800) })))) : null,
        el('details', {}, el('summary', { text: 'Message' }), el('pre', { text: mail.body || '' })));
    },

    init() {
      const subscribe = document.querySelector('#subscribe-form button');
      $('subscribe-form').addEventListener('submit', busy(subscribe, async () => {
        const endpoint = $('subscribe-endpoint').value.trim();
        const answer = await api('topic/subscribe', { method: 'POST', body: { protocol: $('subscribe-protocol').value, endpoint } });
        setText($('subscribe-result'), `Subscription created (${answer.SubscriptionArn || 'pending confirmation'}): a confirmation mail was sent to ${endpoint}`);
        await this.refresh();
      }));
      const publish = document.querySelector('#publish-form button');
      $('publish-form').addEventListener('submit', busy(publish, async () => {
        const body = { message: $('publish-message').value };
        const subject = $('publish-subject').value.trim();
        if (subject) body.subject = subject;
        const answer = await api('topic/publish', { method: 'POST', body });
        setText($('publish-result'), `Message published: ID ${answer.MessageId}`);
      }));
    },
  };

  // ---- lab: Task 9 and its trace

  const LAB_STAGES = ['posted', 'queued', 'row written', 'stream record', 'published', 'mail delivered'];
  const LAB_TIMEOUT_MS = 120000;

  /** "+12 ms", or "−400 ms" for a stage whose clock has whole seconds only (it can read early). */
  function signedMillis(ms) {
    return `${ms < 0 ? '−' : '+'}${fmtInt(Math.abs(ms))} ms`;
  }

  const lab = {
    run: 0, // the current run's number: an older run's polling stops
    items: new Map(),

    enter() {},

    init() {
      this.reset();
      $('lab-run').addEventListener('click', busy($('lab-run'), () => this.start()));
    },

    reset() {
      this.items.clear();
      $('lab-steps').replaceChildren(...LAB_STAGES.map((stage) => this.item(stage)));
    },

    item(stage) {
      const parts = {
        mark: el('span', { class: 'mark', 'aria-hidden': 'true', text: '○' }),
        at: el('span', { class: 'at', text: '' }),
        detail: el('span', { class: 'detail', text: '' }),
      };
      const li = el('li', { 'data-testid': `lab-step-${stage}`, 'data-state': 'pending' },
        parts.mark, el('span', { class: 'stage', text: stage }), parts.at, parts.detail);
      this.items.set(stage, { li, ...parts });
      return li;
    },

    async start() {
      const run = ++this.run;
      this.reset();
      setText($('lab-status'), 'Sending the order…');
      const posted = await api('lab/order', { method: 'POST', body: {} });
      const postedAt = toMillis(posted.postedAt) ?? Date.now();
      setText($('lab-status'), `Order sent: message ${posted.messageId || '—'}, trace ${posted.traceId}. Following it…`);
      this.follow(run, posted.traceId, postedAt);
    },

    /** Polls the trace until it is done, a newer run starts, or two minutes pass. */
    async follow(run, traceId, postedAt) {
      const deadline = Date.now() + LAB_TIMEOUT_MS;
      while (run === this.run) {
        let trace;
        try {
          trace = await api(`lab/trace?traceId=${encodeURIComponent(traceId)}`);
        } catch (error) {
          showError(error);
          setText($('lab-status'), 'Stopped following the order: the trace could not be read.');
          return;
        }
        if (run !== this.run) return;
        this.show(trace.steps || [], postedAt);
        if (trace.done) {
          const last = Math.max(...(trace.steps || []).map((s) => toMillis(s.at) ?? 0));
          setText($('lab-status'), `Done: the order went through the pipeline in ${fmtMillis(last - postedAt)}.`);
          return;
        }
        if (Date.now() > deadline) {
          setText($('lab-status'), `Stopped waiting after ${LAB_TIMEOUT_MS / 1000} s: the order did not reach every stage (is a subscriber confirmed?).`);
          return;
        }
        await delay(250);
      }
    },

    show(steps, postedAt) {
      for (const step of steps) {
        const item = this.items.get(step.stage) || this.appendItem(step.stage);
        const at = toMillis(step.at);
        setAttr(item.li, 'data-state', at === null ? 'pending' : 'done');
        setText(item.mark, at === null ? '○' : '✓');
        setText(item.at, at === null ? 'waiting…' : signedMillis(at - postedAt));
        setText(item.detail, step.detail ? display(step.detail) : '');
      }
    },

    appendItem(stage) {
      $('lab-steps').append(this.item(stage));
      return this.items.get(stage);
    },
  };

  const pages = { cluster, flow, orders, queue, functions, topic, lab };

  // ------------------------------------------------------------------------------------------ 7. boot

  function boot() {
    $('alert-close').addEventListener('click', hideError);
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('token-input').value.trim();
      if (value) useToken(value);
    });
    for (const page of [orders, queue, functions, topic, lab]) page.init();
    window.addEventListener('hashchange', () => {
      if (/(?:^#|&)token=/.test(location.hash)) {
        live.stop();
        useToken(takeToken());
        return;
      }
      hideError();
      router.show(true);
    });
    const found = takeToken();
    if (found) useToken(found);
    else showNoToken('');
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
