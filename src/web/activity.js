/*
 * /ui/activity: the audit trail (GET /api/audit, docs/audit.md), newest
 * first, with the API's filters.  New records arrive live over /api/events
 * (event `audit`) and are shown when they match the filters; "Older
 * records" follows next_cursor.  The export link carries the same filters;
 * with an API token it is fetched with the token and saved, since a plain
 * link cannot send the Authorization header.  Every field goes through
 * OH.h (text only): actors and errors are whatever clients sent.
 */
(function () {
  'use strict';
  var OH = window.OH, h = OH.h;
  var form = OH.$('#activity-filters');
  var tbody = OH.$('#activity tbody');
  var empty = OH.$('#activity-empty');
  var more = OH.$('#activity-more');
  var errEl = OH.$('#activity-error');
  var csv = OH.$('#activity-csv');
  var FIELDS = ['kind', 'device_id', 'actor', 'action', 'code', 'since', 'until'];
  var cursor = null, filters = {}, shown = {};

  /* The form's filters; since and until are local times, sent as UTC. */
  function readFilters() {
    var f = {};
    FIELDS.forEach(function (k) {
      var v = OH.$('#f-' + k).value.trim();
      if (!v) return;
      if (k === 'since' || k === 'until') {
        var t = new Date(v);
        if (isNaN(t.getTime())) return;
        v = t.toISOString().replace(/\.\d+Z$/, 'Z');
      }
      f[k] = v;
    });
    return f;
  }

  function query(f, extra) {
    var parts = [];
    Object.keys(f).forEach(function (k) { parts.push(k + '=' + encodeURIComponent(f[k])); });
    Object.keys(extra || {}).forEach(function (k) { parts.push(k + '=' + encodeURIComponent(extra[k])); });
    return parts.length ? '?' + parts.join('&') : '';
  }

  function matches(r) {
    return Object.keys(filters).every(function (k) {
      if (k === 'since') return r.ts >= filters.since;
      if (k === 'until') return r.ts < filters.until;
      return r[k] === filters[k];
    });
  }

  function result(r) {
    if (!r.code) return '';
    var cls = /^(OK|COMPLETED|DISPATCHED|SCHEDULED|FIRED)$/.test(r.code) ? 'ok'
      : /^(TIMEOUT|SKIPPED|MISSED|EXPIRED)$/.test(r.code) ? 'warn' : 'bad';
    return h('span', { class: ['badge', cls] }, r.code);
  }

  function details(r) {
    var out = [];
    if (r.error) out.push(h('div', { class: 'error' }, r.error));
    if (r.requested_by) out.push(h('div', { class: 'muted' }, 'for ' + r.requested_by));
    if (r.token && r.token !== r.actor) out.push(h('div', { class: 'muted' }, 'token ' + r.token));
    if (r.detail) out.push(h('div', { class: 'muted' }, OH.list(r.detail).join(', ')));
    if (r.req_id) out.push(h('div', { class: 'muted' }, 'req ' + r.req_id));
    return out;
  }

  function row(r, fresh) {
    var when = new Date(Date.parse(r.ts));
    return h('tr', { 'data-seq': r.seq, class: fresh ? 'new' : null },
      h('td', { 'data-label': 'Time', title: r.ts }, isNaN(when.getTime()) ? r.ts : when.toLocaleString()),
      h('td', { 'data-label': 'Kind' }, r.kind),
      h('td', { 'data-label': 'Action' }, r.action || ''),
      h('td', { 'data-label': 'Actor' }, r.actor || ''),
      h('td', { 'data-label': 'Device' }, r.device_id || (r.module ? r.module : '')),
      h('td', { 'data-label': 'Result' }, result(r)),
      h('td', { 'data-label': 'Latency' }, typeof r.latency_ms === 'number' ? r.latency_ms.toFixed(1) + ' ms' : ''),
      h('td', { 'data-label': 'Details' }, details(r)));
  }

  function add(records, atTop) {
    records.forEach(function (r) {
      if (shown[r.seq]) return;
      shown[r.seq] = true;
      if (atTop) tbody.insertBefore(row(r, true), tbody.firstChild);
      else tbody.appendChild(row(r, false));
    });
    empty.hidden = tbody.rows.length > 0;
    if (!empty.hidden) empty.textContent = 'No records match.';
  }

  function load(first) {
    var q = query(filters, Object.assign({ limit: 100 }, first ? {} : { cursor: cursor }));
    OH.showError(errEl, null);
    return OH.fetchJSON('/api/audit' + q).then(function (body) {
      if (first) { OH.clear(tbody); shown = {}; }
      add(body.records, false);
      cursor = body.next_cursor;
      more.hidden = !cursor;
      if (body.enabled === false) {
        empty.hidden = false;
        empty.textContent = 'The audit trail is off on this host (audit.enabled).';
      }
    }, function (err) { OH.showError(errEl, err); empty.textContent = ''; });
  }

  function apply() {
    filters = readFilters();
    csv.setAttribute('href', '/api/audit' + query(filters, { format: 'csv' }));
    load(true);
  }

  form.addEventListener('submit', function (ev) { ev.preventDefault(); apply(); });
  more.addEventListener('click', function () { load(false); });
  /* With a token, a plain link would be refused (401): fetch and save. */
  csv.addEventListener('click', function (ev) {
    if (!OH.token.get()) return;
    ev.preventDefault();
    fetch(csv.getAttribute('href'), { headers: { Authorization: 'Bearer ' + OH.token.get() } })
      .then(function (resp) {
        if (!resp.ok) throw new Error('export: HTTP ' + resp.status);
        return resp.blob();
      })
      .then(function (blob) {
        var a = h('a', { href: '/', download: 'audit.csv' });
        a.href = URL.createObjectURL(blob);
        document.body.appendChild(a);
        a.click();
        document.body.removeChild(a);
        setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
      })
      .catch(function (err) { OH.showError(errEl, err); });
  });
  OH.live.on('audit', function (r) { if (matches(r)) add([r], true); });
  /* After a reconnect records may have been missed: start over. */
  OH.live.on('open', function () { if (tbody.rows.length) load(true); });
  apply();
}());
