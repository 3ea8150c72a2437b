// The relay dashboard: renders each `snapshot` event of /dashboard/events
// (Server-Sent Events, same origin: the browser sends the admin credentials
// it was given at its login prompt). Only textContent and DOM nodes are
// written, never HTML: names and audit fields come from tenants and callers.
'use strict';

(function () {
  const $ = (sel) => document.querySelector(sel);

  function dig(obj, path) {
    return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  function formatCount(n) {
    if (n == null) return '–';
    return Number(n).toLocaleString('en-US', { maximumFractionDigits: 0 });
  }

  function formatRate(n) {
    if (n == null) return '–';
    return Number(n).toLocaleString('en-US', { maximumFractionDigits: n < 10 ? 2 : 0 });
  }

  function formatBytes(n) {
    if (n == null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
  }

  function formatSeconds(s) {
    if (s == null) return '–';
    if (s < 0.001) return (s * 1e6).toFixed(0) + ' µs';
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms';
    return s.toFixed(2) + ' s';
  }

  function formatDuration(total) {
    if (total == null) return '–';
    const d = Math.floor(total / 86400);
    const h = Math.floor((total % 86400) / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = Math.floor(total % 60);
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + m + 'm';
    if (m > 0) return m + 'm ' + s + 's';
    return s + 's';
  }

  // How each data-field is shown; its exact value goes in data-value.
  const formats = {
    'rate.requests_per_second': formatRate,
    'rate.window_seconds': (v) => (v == null ? '–' : Number(v).toFixed(0)),
    'rate.bytes_per_second': formatBytes,
    'totals.requests': formatCount,
    'totals.requests_by_class': (v) => {
      const parts = Object.keys(v || {}).sort().map((k) => k + ' ' + formatCount(v[k]));
      return parts.length ? parts.join(' · ') : 'none yet';
    },
    'totals.bytes_to_origin': formatBytes,
    'totals.bytes_from_origin': formatBytes,
    'latency.p50': formatSeconds, 'latency.p95': formatSeconds, 'latency.p99': formatSeconds,
    'latency.count': formatCount,
    'ttfb.p50': formatSeconds, 'ttfb.p95': formatSeconds, 'ttfb.p99': formatSeconds,
    'tunnel_count': formatCount,
    'relay.attaches': formatCount, 'relay.detaches': formatCount,
    'relay.public_connections': formatCount, 'relay.in_flight': formatCount,
    'relay.uptime_seconds': formatDuration,
  };

  function cell(row, label, text, className) {
    const td = document.createElement('td');
    td.dataset.label = label;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function fill(tableId, items, build) {
    const body = $('#' + tableId + ' tbody');
    const rows = items.map((item) => {
      const tr = document.createElement('tr');
      build(tr, item);
      return tr;
    });
    body.replaceChildren(...rows);
    $('#' + tableId).closest('.table-wrap').hidden = rows.length === 0;
    $('#' + tableId + '-empty').hidden = rows.length !== 0;
  }

  function names(list) {
    const span = document.createElement('span');
    for (const n of list || []) {
      const item = document.createElement('span');
      item.className = 'name';
      item.dataset.name = n.name;
      item.textContent = n.name + ' ';
      const access = document.createElement('span');
      access.className = 'access';
      access.textContent = '(' + (n.access || 'public') + ')';
      item.appendChild(access);
      span.appendChild(item);
    }
    if (!span.childNodes.length) span.textContent = '–';
    return span;
  }

  function render(snap) {
    snap.tunnel_count = (snap.tunnels || []).length + (snap.tunnels_omitted || 0);
    for (const el of document.querySelectorAll('[data-field]')) {
      const key = el.dataset.field;
      const value = dig(snap, key);
      el.dataset.value = value == null ? '' : (typeof value === 'object' ? JSON.stringify(value) : String(value));
      el.textContent = (formats[key] || String)(value);
    }

    fill('tenants', snap.tenants || [], (tr, t) => {
      tr.dataset.tenant = t.tenant;
      cell(tr, 'Tenant', t.tenant);
      cell(tr, 'Tunnels', formatCount(t.tunnels));
      cell(tr, 'Requests', formatCount(t.requests)).dataset.value = String(t.requests);
      cell(tr, 'Bytes to origin', formatBytes(t.bytes_to_origin)).dataset.value = String(t.bytes_to_origin);
      cell(tr, 'Bytes from origin', formatBytes(t.bytes_from_origin)).dataset.value = String(t.bytes_from_origin);
      cell(tr, 'Latency p95', formatSeconds(t.latency && t.latency.p95));
      cell(tr, 'TTFB p95', formatSeconds(t.ttfb && t.ttfb.p95));
    });

    fill('tunnels', snap.tunnels || [], (tr, t) => {
      tr.dataset.tunnelId = String(t.id);
      tr.dataset.tenant = t.tenant;
      cell(tr, 'Tenant', t.tenant);
      cell(tr, 'Names', names(t.names));
      cell(tr, 'Client IP', t.client_ip);
      cell(tr, 'Uptime', formatDuration(t.uptime_seconds)).title = 'attached ' + t.attached_at;
      cell(tr, 'Streams', t.active_streams + ' / ' + t.max_streams);
      cell(tr, 'Requests', formatCount(t.requests));
      cell(tr, 'Bytes', formatBytes(t.bytes_to_origin) + ' / ' + formatBytes(t.bytes_from_origin));
      cell(tr, 'Breaker', t.breaker, 'state-' + t.breaker);
    });
    const omitted = $('#tunnels-omitted');
    omitted.hidden = !snap.tunnels_omitted;
    omitted.textContent = snap.tunnels_omitted ? snap.tunnels_omitted + ' more tunnels not listed' : '';

    fill('limits', snap.limits || [], (tr, l) => {
      tr.dataset.metric = l.metric;
      tr.dataset.which = l.value;
      cell(tr, 'Counter', l.metric);
      cell(tr, 'Which', l.label ? l.label + '=' + l.value : '–');
      cell(tr, 'Count', formatCount(l.count)).dataset.value = String(l.count);
    });

    fill('breakers', snap.breakers || [], (tr, b) => {
      cell(tr, 'Tenant', b.tenant);
      cell(tr, 'Name', b.route);
      cell(tr, 'State', b.state, 'state-' + b.state);
    });

    fill('audit', snap.audit || [], (tr, a) => {
      tr.dataset.event = a.event;
      cell(tr, 'Time', (a.time || '').replace('T', ' ').replace('Z', ''));
      cell(tr, 'Event', a.event);
      const fields = a.fields || {};
      cell(tr, 'Details', Object.keys(fields).map((k) => k + '=' + fields[k]).join(' '));
    });

    $('#updated').textContent = 'updated ' + (snap.time || '').replace('T', ' ').replace('Z', ' UTC');
    document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots || 0) + 1);
  }

  function setStatus(state, text) {
    const el = $('#status');
    el.dataset.state = state;
    el.textContent = text;
  }

  let source = null;
  function connect() {
    source = new EventSource('events');
    source.addEventListener('snapshot', (e) => {
      setStatus('live', 'live');
      try { render(JSON.parse(e.data)); } catch (err) { setStatus('error', 'bad snapshot: ' + err.message); }
    });
    source.addEventListener('open', () => setStatus('live', 'live'));
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (401, 503: too many dashboards open): try again later.
        setStatus('error', 'disconnected; retrying in 5 s');
        source.close();
        setTimeout(connect, 5000);
      } else {
        setStatus('reconnecting', 'reconnecting…');
      }
    });
  }
  connect();
})();
