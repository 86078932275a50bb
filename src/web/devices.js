/*
 * /ui/devices: the live device table.  Every registry update from
 * /api/events (the whole snapshot, or a delta app.js applied to its copy)
 * redraws it, making rows again only for the devices that changed; nothing
 * is fetched otherwise.  Device fields are
 * whatever devices publish, so every one goes through OH.h (text only).
 * A column header sorts by that column (again: the other way), the state
 * menu filters, and the last-seen cell shows the absolute time on hover.
 * "online": null is "unknown": after a host restart, until the device is
 * heard from again (docs/protocol.md), never "offline".
 */
(function () {
  'use strict';
  var OH = window.OH, h = OH.h;
  var tbody = OH.$('#devices tbody');
  var empty = OH.$('#devices-empty');
  var summary = OH.$('#device-summary');
  var filter = OH.$('#device-filter');
  var stateFilter = OH.$('#device-state');
  var sortKey = 'id', sortDir = 1; /* 1 ascending, -1 descending */
  var seen = null;            /* ids already shown, to mark newcomers */
  var rowCache = {};          /* id -> its <tr>, with .sig: what it was made from */

  function state(d) {
    if (d.online === true && d.stale) return ['stale', 'warn', 'online, but silent for too long'];
    if (d.online === true) return ['online', 'ok', 'online'];
    if (d.online === false) return ['offline', 'bad', 'reported offline'];
    return ['unknown', 'muted', 'not heard from since the host started'];
  }

  /* "Tue, 07 Dec 2026 02:40:00 (2026-12-07T02:40:00Z)": the hover text. */
  function absolute(ts) {
    var t = Date.parse(ts);
    return isNaN(t) ? String(ts) : new Date(t).toLocaleString() + ' (' + ts + ')';
  }

  var stateOrder = { online: 0, stale: 1, offline: 2, unknown: 3 };

  /* The value a row sorts by in column key (strings compare as text). */
  function sortValue(key, id, d, locks) {
    switch (key) {
    case 'state': return stateOrder[state(d)[0]];
    case 'modules': return OH.list(d.modules).join(' ').toLowerCase();
    case 'labels': return OH.list(d.labels).join(' ').toLowerCase();
    case 'last_seen': return typeof d.last_seen === 'string' ? d.last_seen : ''; /* ISO: sorts as text */
    case 'lease': return (locks[id] || []).map(function (l) { return String(l.holder); }).join(' ');
    default: return id;
    }
  }

  function sorted(ids, devices, locks) {
    return ids.slice().sort(function (a, b) {
      var va = sortValue(sortKey, a, devices[a] || {}, locks);
      var vb = sortValue(sortKey, b, devices[b] || {}, locks);
      var c = va < vb ? -1 : va > vb ? 1 : 0;
      return (c || (a < b ? -1 : a > b ? 1 : 0)) * (c ? sortDir : 1);
    });
  }

  /* {device id: [{module, holder, expires_at}]} from snapshot.locks. */
  function holders(locks) {
    var out = {};
    Object.keys(locks || {}).forEach(function (key) {
      var i = key.indexOf(':');
      if (i < 0) return;
      var id = key.slice(i + 1);
      var l = locks[key] || {};
      (out[id] = out[id] || []).push({ module: key.slice(0, i), holder: l.holder, expires_at: l.expires_at });
    });
    return out;
  }

  function chips(values, cls) {
    if (!values.length) return h('span', { class: 'muted' }, '—');
    return values.map(function (v) { return h('span', { class: ['chip', cls] }, v); });
  }

  function expiresIn(at) {
    if (typeof at !== 'number') return '';
    var s = Math.round(at - Date.now() / 1000);
    return s > 0 ? 'for ' + s + ' s' : 'expiring';
  }

  function matches(id, d, q) {
    if (!q) return true;
    var hay = [id, d.name, d.hostname].concat(OH.list(d.modules), OH.list(d.labels))
      .join(' ').toLowerCase();
    return hay.indexOf(q) >= 0;
  }

  function render(snap) {
    var devices = snap.devices || {};
    var locks = holders(snap.locks);
    var ids = Object.keys(devices).sort();
    var q = (filter.value || '').trim().toLowerCase();
    var want = stateFilter.value;
    var online = 0, stale = 0, shown = 0;
    var rows = [];
    sorted(ids, devices, locks).forEach(function (id) {
      var d = devices[id] || {};
      var st = state(d);
      if (st[0] === 'online') online++;
      if (st[0] === 'stale') stale++;
      if (!matches(id, d, q) || (want && st[0] !== want)) return;
      shown++;
      /* A row is made again only when what it shows changed: a delta
       * redraws the devices in it, not all 10,000 (the last-seen times
       * are kept current below). */
      var isNew = !!(seen && !seen[id]);
      var sig = JSON.stringify([d, locks[id] || null, isNew]);
      var row = rowCache[id];
      if (!row || row.sig !== sig) {
        var name = d.name || d.hostname;
        var lease = (locks[id] || []).map(function (l) {
          return h('div', { class: 'lease' },
            h('span', { class: 'holder' }, l.holder == null ? '?' : String(l.holder)),
            ' ', h('span', { class: 'muted' }, l.module + ' ' + expiresIn(l.expires_at)));
        });
        row = h('tr', { 'data-device': id, class: isNew ? 'new' : null },
          h('td', { 'data-label': 'Device' },
            h('code', { class: 'device-id' }, id),
            name ? h('div', { class: 'muted device-name' }, String(name)) : null,
            d.version ? h('div', { class: 'muted device-version' }, String(d.version)) : null),
          h('td', { 'data-label': 'State' },
            h('span', { class: ['badge', st[1]], title: st[2], 'data-state': st[0] }, st[0])),
          h('td', { 'data-label': 'Modules', class: 'modules' }, chips(OH.list(d.modules), 'module')),
          h('td', { 'data-label': 'Labels', class: 'labels' }, chips(OH.list(d.labels), 'label')),
          h('td', { 'data-label': 'Last seen', class: 'last-seen', title: d.last_seen ? absolute(d.last_seen) : '',
            'data-ts': d.last_seen || '' }, d.last_seen ? OH.ago(d.last_seen) : 'never'),
          h('td', { 'data-label': 'Lease holder', class: 'leases' },
            lease.length ? lease : h('span', { class: 'muted' }, '—')));
        row.sig = sig;
        rowCache[id] = row;
      }
      rows.push(row);
    });
    /* Moved only where the order changed; rows of devices gone dropped. */
    rows.forEach(function (r, i) {
      if (tbody.children[i] !== r) tbody.insertBefore(r, tbody.children[i] || null);
    });
    while (tbody.children.length > rows.length) tbody.removeChild(tbody.lastChild);
    Object.keys(rowCache).forEach(function (id) { if (!(id in devices)) delete rowCache[id]; });
    seen = {};
    ids.forEach(function (id) { seen[id] = true; });

    empty.hidden = shown > 0;
    OH.clear(empty).appendChild(document.createTextNode(
      ids.length ? 'No device matches the filter.' : 'No devices yet.'));
    summary.textContent = ids.length + ' device' + (ids.length === 1 ? '' : 's') + ' · ' +
      online + ' online · ' + stale + ' stale' + (q || want ? ' · ' + shown + ' shown' : '');
  }

  OH.live.on('registry', render);
  function redraw() {
    if (OH.live.snapshot) render(OH.live.snapshot);
  }
  filter.addEventListener('input', redraw);
  stateFilter.addEventListener('change', redraw);
  OH.$$('#devices th[data-sort]').forEach(function (th) {
    th.querySelector('button').addEventListener('click', function () {
      var key = th.getAttribute('data-sort');
      sortDir = key === sortKey ? -sortDir : 1;
      sortKey = key;
      OH.$$('#devices th[data-sort]').forEach(function (other) {
        other.setAttribute('aria-sort', other === th ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
      });
      redraw();
    });
  });
  /* Keep "12 s ago" honest between snapshots. */
  setInterval(function () {
    OH.$$('td.last-seen[data-ts]').forEach(function (td) {
      var ts = td.getAttribute('data-ts');
      if (ts) td.textContent = OH.ago(ts);
    });
  }, 5000);
})();
