// The PrivID web console: one page, hash routes (#/try, #/visitor/<id>,
// #/dashboard, #/reference), talking only to the gateway's own API with the
// API key kept in this tab's sessionStorage. No inline script or style (the
// gateway's Content-Security-Policy forbids them); charts by Chart.js.
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement,
  PointElement, Tooltip,
} from 'chart.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement,
  Legend, Tooltip);

const KEY = 'privid.apiKey';
const $ = (id) => document.getElementById(id);
const charts = {};

// ---- API access and errors ----------------------------------------------
class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, { body, type, auth = true } = {}) {
  const headers = {};
  if (auth) headers.Authorization = `Bearer ${sessionStorage.getItem(KEY) || ''}`;
  if (type) headers['Content-Type'] = type;
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'network', 'The gateway could not be reached (network error).');
  }
  let json = null;
  try { json = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const err = json && json.error ? json.error : {};
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText,
      res.headers.get('Retry-After'));
  }
  return json;
}

function describe(e) {
  if (!(e instanceof ApiError)) return `Unexpected error: ${e.message || e}`;
  const m = e.message;
  switch (e.status) {
    case 401: return `The API key was refused (401 ${e.code}): ${m}. Check the key and sign in again.`;
    case 403: return `This API key lacks the scope for this (403): ${m}.`;
    case 404: return `Not found (404): ${m}.`;
    case 429: return `Rate limited (429): ${m}.${e.retryAfter ? ` Retry in ${e.retryAfter} s.` : ''}`;
    case 503: return `The service is overloaded or unavailable (503): ${m}.${e.retryAfter ? ` Retry in ${e.retryAfter} s.` : ''}`;
    case 0: return m;
    default: return `Request failed (${e.status} ${e.code}): ${m}.`;
  }
}

function showError(e) {
  const box = $('error');
  box.textContent = typeof e === 'string' ? e : describe(e);
  box.hidden = false;
  if (e instanceof ApiError && e.status === 401 && !sessionStorage.getItem(KEY)) route();
}
function clearError() { $('error').hidden = true; $('error').textContent = ''; }

// ---- sign in / out and routing -------------------------------------------
async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    const who = await api('GET', '/v1/whoami');
    $('tenant').textContent = `${who.tenant.name} (${who.key.scopes.join(', ')})`;
    return true;
  } catch (e) {
    sessionStorage.removeItem(KEY);
    showError(e);
    return false;
  }
}

// Sign-out forgets the key and reloads the page, so nothing the previous key
// fetched (photos, visitors, figures) stays on screen for the next one.
function signOut() {
  sessionStorage.removeItem(KEY);
  history.replaceState(null, '', '/');
  location.reload();
}

const VIEWS = ['signin', 'try', 'visitor', 'dashboard', 'reference'];
function show(view) {
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  const signedIn = !!sessionStorage.getItem(KEY);
  $('nav').hidden = !signedIn;
  $('who').hidden = !signedIn;
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${view}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function route() {
  if (!sessionStorage.getItem(KEY)) { show('signin'); return; }
  const [, view, arg] = location.hash.split('/');
  switch (view) {
    case 'visitor':
      show('visitor');
      if (arg) { $('visitor-id').value = decodeURIComponent(arg); loadVisitor(); }
      break;
    case 'dashboard': show('dashboard'); if ($('dash').hidden) loadDashboard(); break;
    case 'reference': show('reference'); loadReference(); break;
    default: show('try');
  }
}

// ---- Try it ----------------------------------------------------------------
let snapshot = null; // a webcam Blob, used instead of the file input when set
let stream = null;

async function startCam() {
  clearError();
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true });
  } catch (e) {
    showError(`The webcam is not available: ${e.message}`);
    return;
  }
  $('cam').srcObject = stream;
  $('cam').hidden = false;
  $('cam-snap').hidden = false;
}

function snap() {
  const v = $('cam');
  const c = document.createElement('canvas');
  c.width = v.videoWidth;
  c.height = v.videoHeight;
  c.getContext('2d').drawImage(v, 0, 0);
  c.toBlob((b) => { snapshot = b; $('try-submit').textContent = 'Recognize the snapshot'; }, 'image/jpeg', 0.92);
  for (const t of stream.getTracks()) t.stop();
  $('cam').hidden = true;
  $('cam-snap').hidden = true;
}

function fmt(n, digits = 2) { return typeof n === 'number' ? n.toFixed(digits) : '—'; }

async function recognize(ev) {
  ev.preventDefault();
  clearError();
  const file = $('photo').files[0];
  const blob = snapshot || file;
  if (!blob) { showError('Choose a photo or take a webcam snapshot first.'); return; }
  const identify = $('identify-only').checked;
  const q = new URLSearchParams();
  if (!identify) {
    if ($('location').value) q.set('location', $('location').value);
    if ($('camera').value) q.set('camera', $('camera').value);
  }
  const path = `/v1/${identify ? 'identify' : 'recognize'}${q.toString() ? `?${q}` : ''}`;
  $('try-submit').disabled = true;
  try {
    const r = await api('POST', path, { body: blob, type: blob.type || 'image/jpeg' });
    await drawResult(blob, r);
  } catch (e) {
    showError(e);
  } finally {
    $('try-submit').disabled = false;
  }
}

async function drawResult(blob, r) {
  const url = URL.createObjectURL(blob);
  const img = new Image();
  await new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; img.src = url; });
  const c = $('preview');
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  URL.revokeObjectURL(url);
  const lw = Math.max(2, Math.round(c.width / 400));
  g.font = `${Math.max(14, Math.round(c.width / 60))}px system-ui, sans-serif`;
  const tbody = $('faces').tBodies[0];
  tbody.textContent = '';
  r.faces.forEach((f, i) => {
    const color = f.status === 'returning' ? '#2e9e44' : f.status === 'new' ? '#1d5fa0' : '#b07d00';
    g.lineWidth = lw;
    g.strokeStyle = color;
    g.strokeRect(f.box.x, f.box.y, f.box.width, f.box.height);
    const label = `${i + 1} ${f.visitor ? f.visitor.slice(0, 12) : ''} ${f.status || ''}`;
    const tw = g.measureText(label).width;
    const th = parseInt(g.font, 10) + 6;
    g.fillStyle = color;
    g.fillRect(f.box.x, Math.max(0, f.box.y - th), tw + 8, th);
    g.fillStyle = '#fff';
    g.fillText(label, f.box.x + 4, Math.max(th - 6, f.box.y - 6));
    const tr = tbody.insertRow();
    tr.insertCell().textContent = String(i + 1);
    const vc = tr.insertCell();
    if (f.visitor) {
      const a = document.createElement('a');
      a.href = `#/visitor/${encodeURIComponent(f.visitor)}`;
      a.textContent = f.visitor;
      a.className = 'visitor-link';
      vc.append(a);
    } else vc.textContent = '—';
    tr.insertCell().textContent = f.status || '—';
    tr.insertCell().textContent = fmt(f.confidence);
    tr.insertCell().textContent = f.visits != null ? String(f.visits) : '—';
  });
  const dl = $('timings');
  dl.textContent = '';
  for (const [k, v] of Object.entries(r.timings_ms || {})) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = fmt(v, 1);
    dl.append(dt, dd);
  }
  $('try-result').hidden = false;
  $('faces').querySelector('caption').textContent =
    `${r.faces.length} face${r.faces.length === 1 ? '' : 's'} in ${r.image.width}×${r.image.height} ${r.image.format}${r.degraded ? ' (degraded answer)' : ''}`;
}

// ---- Visitor -------------------------------------------------------------
// "3 purchases, 41.50 EUR, last 2026-12-01T10:02:03.000Z"; the API gives null without its database
function purchasesText(p) {
  if (p == null) return 'not available (the analytics database is not reachable)';
  if (p.count === 0) return 'none';
  const totals = p.totals.map((t) => `${(t.amount_minor / 100).toFixed(2)} ${t.currency}`).join(' + ');
  return `${p.count} purchase${p.count === 1 ? '' : 's'}${totals ? `, ${totals}` : ''}${p.last_at ? `, last ${p.last_at}` : ''}`;
}

async function loadVisitor(ev) {
  if (ev) ev.preventDefault();
  clearError();
  $('visitor-msg').textContent = '';
  const id = $('visitor-id').value.trim();
  $('visitor-card').hidden = true;
  try {
    const v = await api('GET', `/v1/visitors/${encodeURIComponent(id)}`);
    $('v-id').textContent = v.visitor;
    $('v-first').textContent = v.first_seen || '—';
    $('v-last').textContent = v.last_seen || '—';
    $('v-visits').textContent = String(v.visits);
    $('v-purchases').textContent = purchasesText(v.purchases);
    $('visitor-card').hidden = false;
  } catch (e) {
    showError(e);
  }
}

async function erase() {
  const id = $('v-id').textContent;
  if (!window.confirm(`Erase visitor ${id}? Its identity, visits and events are deleted and cannot be restored.`)) return;
  clearError();
  try {
    await api('DELETE', `/v1/visitors/${encodeURIComponent(id)}`);
    $('visitor-card').hidden = true;
    $('visitor-msg').textContent = `Visitor ${id} was erased.`;
  } catch (e) {
    showError(e);
  }
}

// ---- Dashboard -----------------------------------------------------------
const isSup = (v) => v && typeof v === 'object' && v.suppressed;
function cell(el, v, render = (x) => String(x)) {
  el.textContent = '';
  if (isSup(v)) {
    const s = document.createElement('span');
    s.className = 'sup';
    s.textContent = 'suppressed';
    s.title = 'fewer than k visitors: hidden for k-anonymity';
    el.append(s);
  } else el.textContent = v == null ? '—' : render(v);
}
const pct = (x) => `${(x * 100).toFixed(1)}%`;
const num = (v) => (isSup(v) || v == null ? null : v);

function isoDay(d) { return d.toISOString().slice(0, 10); }
function dashDefaults() {
  if ($('d-from').value) return;
  const today = new Date();
  $('d-to').value = isoDay(today);
  $('d-from').value = isoDay(new Date(today.getTime() - 27 * 86400000));
}

function drawChart(id, config) {
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart($(id), { ...config, options: { responsive: true, animation: false, ...config.options } });
}

async function loadDashboard(ev) {
  if (ev) ev.preventDefault();
  clearError();
  dashDefaults();
  const q = new URLSearchParams();
  q.set('from', `${$('d-from').value}T00:00:00Z`);
  const to = new Date(`${$('d-to').value}T00:00:00Z`);
  q.set('to', new Date(to.getTime() + 86400000).toISOString().replace('.000Z', 'Z'));
  if ($('d-location').value.trim()) q.set('location', $('d-location').value.trim());
  let sum, ts, ret, freq, conv;
  try {
    [sum, ts, ret, freq, conv] = await Promise.all([
      api('GET', `/v1/analytics/summary?${q}`),
      api('GET', `/v1/analytics/timeseries?${q}&bucket=day`),
      api('GET', `/v1/analytics/retention?${q}`),
      api('GET', `/v1/analytics/frequency?${q}`),
      api('GET', `/v1/analytics/conversion?${q}`),
    ]);
  } catch (e) {
    showError(e);
    return;
  }
  const s = sum.data;
  cell($('s-visits'), s.visits);
  cell($('s-visitors'), s.visitors);
  cell($('s-new'), s.new_visitors);
  cell($('s-returning'), s.returning_visitors);
  cell($('s-repeat'), s.repeat_visit_rate, pct);
  cell($('s-vpv'), s.visits_per_visitor, (x) => x.toFixed(2));
  $('k-note').textContent = `k = ${sum.k}; ${sum.from} to ${sum.to}${sum.location ? `, location ${sum.location}` : ', all locations'}.`;
  $('dash').hidden = false;

  const b = ts.data.buckets;
  drawChart('c-time', {
    type: 'line',
    data: {
      labels: b.map((x) => x.start.slice(0, 10)),
      datasets: [
        { label: 'Visits', data: b.map((x) => num(x.visits)), borderColor: '#1d5fa0', backgroundColor: '#1d5fa0' },
        { label: 'Distinct visitors', data: b.map((x) => num(x.visitors)), borderColor: '#2e9e44', backgroundColor: '#2e9e44' },
      ],
    },
    options: { spanGaps: false, scales: { y: { beginAtZero: true } } },
  });
  drawChart('c-newret', {
    type: 'bar',
    data: {
      labels: ['New', 'Returning'],
      datasets: [{ label: 'Visitors', data: [num(s.new_visitors), num(s.returning_visitors)], backgroundColor: ['#1d5fa0', '#2e9e44'] }],
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  });
  const dist = freq.data.distribution;
  drawChart('c-freq', {
    type: 'bar',
    data: {
      labels: dist.map((d) => `${d.visits} visit${d.visits === '1' ? '' : 's'}`),
      datasets: [{ label: 'Visitors', data: dist.map((d) => num(d.visitors)), backgroundColor: '#6f42c1' }],
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  });
  const fcap = $('c-freq').closest('figure').querySelector('figcaption');
  const hidden = dist.filter((d) => isSup(d.visitors)).map((d) => d.visits);
  fcap.textContent = `Visit frequency (visitors by number of visits)${hidden.length ? ` — suppressed: ${hidden.join(', ')}` : ''}`;

  // retention heat map: one row per cohort, week 0 = cohort size, then the share back in week w
  const cohorts = ret.data.cohorts;
  const weeks = Math.max(1, ...cohorts.map((c) => c.weeks.length));
  const thead = $('retention').tHead;
  thead.textContent = '';
  const hr = thead.insertRow();
  for (const h of ['Cohort (week of first visit)', 'Size', ...Array.from({ length: weeks - 1 }, (_, i) => `Week ${i + 1}`)]) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = h;
    hr.append(th);
  }
  const tb = $('retention').tBodies[0];
  tb.textContent = '';
  for (const c of cohorts) {
    const tr = tb.insertRow();
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = c.cohort.slice(0, 10);
    tr.append(th);
    cell(tr.insertCell(), c.size);
    for (let w = 1; w < weeks; w++) {
      const td = tr.insertCell();
      const v = c.weeks[w];
      if (v === undefined) continue;
      const size = num(c.size);
      cell(td, v, (x) => (size ? `${x} (${pct(x / size)})` : String(x)));
      if (!isSup(v) && size) td.style.backgroundColor = `rgba(29, 95, 160, ${Math.min(1, v / size) * 0.85 + 0.05})`;
      if (!isSup(v) && size && v / size > 0.5) td.style.color = '#fff';
    }
  }
  if (!cohorts.length) tb.insertRow().insertCell().textContent = 'No cohorts in this range.';

  const ctb = $('conversion').tBodies[0];
  ctb.textContent = '';
  for (const seg of ['all', 'new', 'returning']) {
    const d = conv.data[seg];
    const tr = ctb.insertRow();
    tr.dataset.segment = seg;
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = seg;
    tr.append(th);
    cell(tr.insertCell(), d.visitors);
    cell(tr.insertCell(), d.buyers);
    cell(tr.insertCell(), d.conversion_rate, pct);
    const rev = tr.insertCell();
    if (!d.revenue.length) rev.textContent = '—';
    for (const r of d.revenue) {
      const span = document.createElement('span');
      span.className = 'rev';
      cell(span, r.per_visitor_minor, (x) => `${(x / 100).toFixed(2)} ${r.currency}`);
      rev.append(span, ' ');
    }
  }
}

// ---- Reference -----------------------------------------------------------
let refLoaded = false;
async function loadReference() {
  if (refLoaded) return;
  const tb = $('ref').tBodies[0];
  tb.textContent = '';
  let doc;
  try {
    doc = await api('GET', '/openapi.json', { auth: false });
  } catch (e) {
    $('ref-info').textContent = e.status === 404
      ? 'This gateway does not serve an API reference (/openapi.json).'
      : `The API reference could not be loaded: ${describe(e)}`;
    return;
  }
  refLoaded = true;
  $('ref-info').textContent = `${doc.info ? `${doc.info.title} ${doc.info.version}` : 'API'} — OpenAPI ${doc.openapi || '?'}`;
  for (const [path, ops] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(ops)) {
      if (!['get', 'post', 'put', 'delete', 'patch', 'head'].includes(method)) continue;
      const tr = tb.insertRow();
      tr.insertCell().textContent = method.toUpperCase();
      const code = document.createElement('code');
      code.textContent = path;
      tr.insertCell().append(code);
      tr.insertCell().textContent = op.summary || '';
    }
  }
}

// ---- wiring ----------------------------------------------------------------
$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearError();
  if (await signIn($('apikey').value.trim())) {
    if (!location.hash || location.hash === '#/') location.hash = '#/try';
    route();
  }
});
$('signout').addEventListener('click', signOut);
$('try-form').addEventListener('submit', recognize);
$('photo').addEventListener('change', () => { snapshot = null; $('try-submit').textContent = 'Recognize'; });
$('cam-start').addEventListener('click', startCam);
$('cam-snap').addEventListener('click', snap);
$('visitor-form').addEventListener('submit', loadVisitor);
$('erase').addEventListener('click', erase);
$('dash-form').addEventListener('submit', loadDashboard);
window.addEventListener('hashchange', route);
if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY)).then(route); else route();
