// The live page of `mmsweep ui`: plain browser JavaScript, no build step, no network beyond this server.
// Data comes from /api/*; /events (server-sent events) says when an epoch, a trial or a result changed, and the
// page refetches only what that change touches. Text from the database is set with textContent; the only HTML
// inserted as such is the server's figure markup (SVG drawn by the report code, its text escaped there).
'use strict';

const state = { selected: null, studies: [], live: null, running: new Set() };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function setStatus(kind, text) {
  document.getElementById('dot').className = `dot ${kind}`;
  document.getElementById('status-text').textContent = text;
}

async function getJson(url) {
  const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `${res.status} ${res.statusText}`);
  return body;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.round(seconds / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

function progressBar(s) {
  const total = Math.max(1, s.total);
  const bar = el('div', { class: 'bar', title: `${s.done} done, ${s.running} running, ${s.pending} pending, ${s.failed} failed` });
  for (const [cls, n] of [['done', s.done], ['running', s.running], ['failed', s.failed]]) {
    const seg = el('span', { class: cls });
    seg.style.width = `${(100 * n) / total}%`;
    bar.append(seg);
  }
  return bar;
}

function selectedFromHash() {
  const m = /^#study=(.+)$/.exec(location.hash);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

async function loadStudies() {
  const data = await getJson('/api/studies');
  state.studies = data.studies;
  const body = document.querySelector('#studies tbody');
  body.replaceChildren();
  document.getElementById('no-studies').hidden = data.studies.length > 0;
  for (const s of data.studies) {
    const row = el(
      'tr',
      { 'data-study': s.id },
      el('td', { class: 'label', text: s.name }),
      el('td', { class: 'label', text: s.status }),
      el('td', { class: 'label' }, progressBar(s)),
      el('td', { text: `${s.done} / ${s.total}` }),
      el('td', { text: String(s.running) }),
      el('td', { text: String(s.pending) }),
      el('td', { text: String(s.failed) }),
      el('td', { text: duration(s.eta.seconds), title: s.eta.basis }),
    );
    if (s.id === state.selected) row.classList.add('selected');
    row.addEventListener('click', () => {
      location.hash = `study=${encodeURIComponent(s.id)}`;
    });
    body.append(row);
  }
  if (state.selected === null && data.studies.length > 0) {
    const pick = data.studies.find((s) => s.running > 0) || data.studies[0];
    select(pick.id);
  }
}

function select(id) {
  if (state.selected === id) return;
  state.selected = id;
  for (const row of document.querySelectorAll('#studies tbody tr')) row.classList.toggle('selected', row.dataset.study === id);
  document.getElementById('running').replaceChildren();
  document.getElementById('figures').replaceChildren(el('p', { class: 'meta', text: 'loading…' }));
  state.running = new Set();
  refreshStudy().then(() => refreshFigures());
}

async function refreshStudy() {
  const id = state.selected;
  if (id === null) return;
  let data;
  try {
    data = await getJson(`/api/study?id=${encodeURIComponent(id)}`);
  } catch (error) {
    document.getElementById('study').hidden = false;
    document.getElementById('study-title').textContent = id;
    document.getElementById('study-meta').replaceChildren(el('span', { class: 'error', text: error.message }));
    return;
  }
  if (id !== state.selected) return;
  const s = data.study;
  document.getElementById('study').hidden = false;
  document.getElementById('study-title').textContent = `${s.name}${s.preset && s.preset !== s.name ? ` (preset ${s.preset})` : ''}`;
  const meta = document.getElementById('study-meta');
  meta.replaceChildren(`${s.status} · ${s.done} of ${s.total} trials done, ${s.running} running, ${s.pending} pending, ${s.failed} failed, ${s.diverged} diverged`);
  if (data.temporalUrl) meta.append(' · ', el('a', { href: data.temporalUrl, target: '_blank', rel: 'noopener', text: 'workflow in the Temporal UI' }));

  const workers = document.querySelector('#workers tbody');
  workers.replaceChildren();
  for (const w of s.workers) {
    workers.append(
      el(
        'tr',
        {},
        el('td', { class: 'label', text: w.worker }),
        el('td', { text: String(w.running) }),
        el('td', { text: String(w.done) }),
        el('td', { text: String(w.failed) }),
        el('td', { text: w.meanEpochSeconds === null ? '—' : w.meanEpochSeconds.toFixed(1) }),
        el('td', { text: String(w.measuredEpochs) }),
      ),
    );
  }
  if (s.workers.length === 0) workers.append(el('tr', {}, el('td', { class: 'label', colspan: '6', text: 'no trial has started yet' })));
  const expected = s.expectedEpochs === null ? 'unknown' : `${s.expectedEpochs.toFixed(1)} (${s.expectedEpochsBasis})`;
  document.getElementById('eta-box').replaceChildren(
    el('div', {}, 'ETA ', el('span', { class: 'eta', text: duration(s.eta.seconds) })),
    el('div', { class: 'meta', text: s.eta.basis }),
    el('div', { class: 'meta', text: `mean epoch ${s.meanEpochSeconds === null ? '—' : `${s.meanEpochSeconds.toFixed(1)} s`} · epochs per trial expected: ${expected}` }),
  );

  document.getElementById('running-note').textContent = data.running.length
    ? `(${data.running.length}${data.moreRunning > 0 ? ` shown, ${data.moreRunning} more` : ''})`
    : '(none)';
  const box = document.getElementById('running');
  const keep = new Set(data.running.map((t) => t.trialKey));
  for (const card of [...box.children]) if (!keep.has(card.dataset.trial)) card.remove();
  for (const t of data.running) {
    let card = box.querySelector(`.trial[data-trial="${CSS.escape(t.trialKey)}"]`);
    const isNew = !card;
    if (isNew) {
      card = el('div', { class: 'trial', 'data-trial': t.trialKey }, el('h4'), el('p', { class: 'facts' }), el('div', { class: 'curve' }));
      box.append(card);
    }
    card.querySelector('h4').textContent = t.label || `${t.dataset} ${t.algorithm || ''} lr ${t.lr} seed ${t.seed}`;
    const share = el('span', { class: 'share', title: 're-balancing share of the last epoch' }, el('i'));
    share.firstChild.style.width = `${Math.round(100 * (t.rebalanceShare || 0))}%`;
    const facts = card.querySelector('.facts');
    facts.replaceChildren(
      el('span', { text: `trial ${t.trialKey.slice(0, 12)}` }),
      el('span', { text: `worker ${t.worker || '—'} · attempt ${t.attempt}` }),
      el('span', { text: `epoch ${t.lastEpoch === null ? '—' : t.lastEpoch} of ≤ ${t.maxEpochs === null ? '?' : t.maxEpochs}` }),
      el('span', {}, 're-balancing ', share, ` ${t.rebalanceShare === null ? '—' : `${Math.round(100 * t.rebalanceShare)} %`}`),
    );
    if (data.temporalUrl) facts.append(el('a', { href: data.temporalUrl, target: '_blank', rel: 'noopener', text: 'Temporal' }));
    if (isNew || Number(card.dataset.lastEpoch ?? -1) !== (t.lastEpoch ?? -1)) scheduleCurve(t.trialKey);
  }
  state.running = keep;
}

const curveTimers = new Map();
function scheduleCurve(trialKey) {
  clearTimeout(curveTimers.get(trialKey));
  curveTimers.set(trialKey, setTimeout(() => refreshCurve(trialKey), 150));
}

async function refreshCurve(trialKey) {
  const id = state.selected;
  const card = document.querySelector(`.trial[data-trial="${CSS.escape(trialKey)}"]`);
  if (!card || id === null) return;
  let curve;
  try {
    curve = await getJson(`/api/trial/curve?study=${encodeURIComponent(id)}&trial=${encodeURIComponent(trialKey)}`);
  } catch (error) {
    card.querySelector('.curve').replaceChildren(el('p', { class: 'error', text: error.message }));
    return;
  }
  if (id !== state.selected) return;
  const box = card.querySelector('.curve');
  if (curve.svg) box.innerHTML = curve.svg;
  else box.replaceChildren(el('p', { class: 'meta', text: 'no epoch finished yet' }));
  card.dataset.epochs = String(curve.epochs);
  card.dataset.lastEpoch = String(curve.lastEpoch ?? -1);
}

async function refreshFigures() {
  const id = state.selected;
  if (id === null) return;
  const box = document.getElementById('figures');
  try {
    const figures = await getJson(`/api/study/figures?id=${encodeURIComponent(id)}`);
    if (id !== state.selected) return;
    box.innerHTML = figures.html;
    box.dataset.results = String(figures.results);
  } catch (error) {
    box.replaceChildren(el('p', { class: 'error', text: error.message }));
  }
}

/** At most one call of `fn` per `ms`, the last request always served. */
function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  return () => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn().catch((error) => setStatus('down', error.message));
    }, wait);
  };
}

const refreshOverview = throttle(() => Promise.all([loadStudies(), refreshStudy()]), 1000);
const refreshAll = throttle(() => Promise.all([loadStudies(), refreshStudy(), refreshFigures()]), 3000);

function connect() {
  const events = new EventSource('/events');
  events.addEventListener('hello', (e) => {
    const hello = JSON.parse(e.data);
    state.live = hello.live;
    setStatus('live', hello.live === 'notify' ? 'live (Postgres LISTEN/NOTIFY)' : 'live (polling the database)');
    refreshOverview();
  });
  events.addEventListener('epoch', (e) => {
    const { trialKey } = JSON.parse(e.data);
    if (state.running.has(trialKey)) {
      scheduleCurve(trialKey);
      refreshOverview();
    }
  });
  events.addEventListener('trials', () => refreshOverview());
  events.addEventListener('results', () => refreshAll());
  events.addEventListener('error', () => setStatus('down', 'disconnected: reconnecting…'));
}

window.addEventListener('hashchange', () => {
  const id = selectedFromHash();
  if (id !== null) select(id);
});

(async () => {
  const fromHash = selectedFromHash();
  if (fromHash !== null) select(fromHash);
  try {
    await loadStudies();
  } catch (error) {
    setStatus('down', error.message);
  }
  connect();
  // The ETA moves with the clock between events too.
  setInterval(() => refreshOverview(), 30_000);
})();
