/*
 * /ui/ndi: drive NDI devices through the plugin's REST API and watch what
 * becomes of each command.
 *
 *   devices   GET /api/ndi/devices when the event stream (re)connects and
 *             every 10 s (module status is not in the registry stream); a
 *             device ack (input, recording), a lease change or a newcomer
 *             in a registry delta asks for just that device (?ids=); at
 *             most one request in flight and one a second.  A registry delta
 *             updates the rows of the devices it names (online, stale, last
 *             seen) and the lease holders (its locks) in place.
 *   sources   GET /api/ndi/sources, offered as suggestions for the source box
 *   commands  POST /api/ndi/send; the reply is the DISPATCHED ack (or an
 *             error), published on /lab/orchestrator/ndi/evt as well, where
 *             the device's COMPLETED / FAILED / TIMEOUT follows; both reach
 *             the page as `orch_evt` server-sent events.  Each command's
 *             codes are shown in causal order, whichever arrived first.
 *             Disabled while the broker is away (data-needs-broker).
 *   leases    POST /api/ndi/reserve, /release, /force_release
 *   jobs      GET/POST /api/ndi/jobs, DELETE /api/ndi/jobs/{id}
 *   routing   the matrix: GET /api/ndi/routes when the event stream (re)connects;
 *             each ROUTE_STATE event carries the whole route (or its
 *             removal) and is applied to the page's copy; a click is PUT /api/ndi/routes/{device}; presets are
 *             GET/PUT /api/ndi/presets[/{name}], POST .../apply, and a cron
 *             job with one apply_preset command
 *   history   GET /api/audit (the host's audit trail): the last 50
 *             commands' outcomes, so the acks table survives a reload
 *
 * Everything a device or another user supplied reaches the DOM through
 * OH.h (text nodes and attributes, never markup).
 */
(function () {
  'use strict';
  var OH = window.OH, h = OH.h;
  var API = '/api/ndi';
  var MAX_ACKS = 50;

  var el = {
    device: OH.$('#ndi-device'),
    source: OH.$('#ndi-source'),
    sources: OH.$('#ndi-sources'),
    actor: OH.$('#ndi-actor'),
    info: OH.$('#ndi-device-info tbody'),
    leaseS: OH.$('#ndi-lease-s'),
    error: OH.$('#ndi-error'),
    acks: OH.$('#ndi-acks tbody'),
    acksEmpty: OH.$('#ndi-acks-empty'),
    devices: OH.$('#ndi-devices tbody'),
    devicesEmpty: OH.$('#ndi-devices-empty'),
    jobForm: OH.$('#ndi-job-form'),
    jobWhen: OH.$('#ndi-job-when'),
    jobAt: OH.$('#ndi-job-at'),
    jobCron: OH.$('#ndi-job-cron'),
    jobAction: OH.$('#ndi-job-action'),
    jobName: OH.$('#ndi-job-name'),
    jobError: OH.$('#ndi-job-error'),
    jobs: OH.$('#ndi-jobs tbody'),
    jobsEmpty: OH.$('#ndi-jobs-empty'),
    matrix: OH.$('#ndi-matrix'),
    matrixEmpty: OH.$('#ndi-matrix-empty'),
    routingError: OH.$('#ndi-routing-error'),
    presetName: OH.$('#ndi-preset-name'),
    presetSave: OH.$('#ndi-preset-save'),
    presetCron: OH.$('#ndi-preset-cron'),
    presets: OH.$('#ndi-presets tbody'),
    presetsEmpty: OH.$('#ndi-presets-empty')
  };

  var devices = [];           /* the last GET /devices, as deltas changed it */
  var routes = {};            /* device_id -> route: GET /routes + ROUTE_STATE */
  var routeEvents = {};       /* device_id -> ROUTE_STATE events seen */
  var sourceNames = [];       /* the last GET /sources */
  var acks = {};              /* req_id -> {row, cells, events: [ack...]} */
  var ackOrder = [];          /* req_ids, newest first */

  /* ---- small helpers ---------------------------------------------------- */

  function actor() {
    var a = (el.actor.value || '').trim();
    return a || 'ui';
  }

  function str(v) {
    if (v === null || v === undefined) return '';
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  function badgeClass(code) {
    if (code === 'COMPLETED' || code === 'OK') return 'ok';
    if (code === 'DISPATCHED' || code === 'SCHEDULED' || code === 'FIRED') return 'warn';
    return 'bad';
  }

  function timeOf(iso) {
    var t = iso ? new Date(iso) : new Date();
    if (isNaN(t.getTime())) return str(iso);
    return t.toLocaleTimeString();
  }

  function showError(err) { OH.showError(el.error, err); }

  /* Remembered across visits (localStorage only; no cookies). */
  try {
    var saved = window.localStorage.getItem('ndi.actor');
    if (saved) el.actor.value = saved;
  } catch (e) { /* storage disabled */ }
  /* With API tokens the host acts in the token's name and ignores this
   * field: say so instead of offering a choice that does nothing. */
  OH.fetchJSON('/healthz').catch(function (e) { return e.body || {}; }).then(function (hz) {
    if (hz && hz.auth === 'tokens') {
      el.actor.value = '';
      el.actor.placeholder = 'your token\'s name';
      el.actor.disabled = true;
      el.actor.title = 'API tokens are configured: commands and leases are in your token\'s name';
    }
  });
  el.actor.addEventListener('change', function () {
    try { window.localStorage.setItem('ndi.actor', actor()); } catch (e) { /* ignore */ }
  });

  /* ---- devices ------------------------------------------------------------ */

  function selected() {
    var id = el.device.value;
    for (var i = 0; i < devices.length; i++) if (devices[i].device_id === id) return devices[i];
    return null;
  }

  function stateOf(d) {
    if (d.online === true && d.stale) return ['stale', 'warn'];
    if (d.online === true) return ['online', 'ok'];
    if (d.online === false) return ['offline', 'bad'];
    return ['unknown', 'muted'];
  }

  function leaseText(d) {
    if (!d.lease) return '—';
    /* Counted down here: a lease from a registry delta has no remaining_s. */
    var left = Date.parse(d.lease.expires_at);
    left = isNaN(left) ? d.lease.remaining_s : Math.max(0, Math.ceil((left - Date.now()) / 1000));
    return str(d.lease.holder) + ' (' + str(left) + ' s left)';
  }

  var selectShown = null;     /* the ids the device menu lists, joined */
  function renderSelect() {
    var ids = devices.map(function (d) { return d.device_id; }).join(' ');
    if (ids === selectShown) return;
    selectShown = ids;
    var keep = el.device.value;
    OH.clear(el.device);
    if (!devices.length) {
      el.device.appendChild(h('option', { value: '' }, '(no NDI devices yet)'));
    }
    devices.forEach(function (d) {
      el.device.appendChild(h('option', { value: d.device_id }, d.device_id));
    });
    if (keep && devices.some(function (d) { return d.device_id === keep; })) el.device.value = keep;
  }

  function renderInfo() {
    var d = selected();
    OH.clear(el.info);
    if (!d) return;
    var st = stateOf(d);
    function cell(label, value) {
      return h('td', { 'data-label': label, 'data-field': label.toLowerCase().replace(/ /g, '-') },
        value);
    }
    el.info.appendChild(h('tr', null,
      cell('State', h('span', { class: ['badge', st[1]] }, st[0])),
      cell('Input', d.input == null ? '—' : str(d.input)),
      cell('Recording', d.recording === true ? 'yes' : d.recording === false ? 'no' : '—'),
      cell('Lease holder', leaseText(d))));
  }

  /* Rows are made again only for the devices whose cells changed: a delta
   * names a few devices of thousands. */
  var rowsShown = {};         /* device_id -> {sig, tr} */
  function deviceRow(d) {
    var st = stateOf(d);
    var sig = JSON.stringify([st[0], d.state, d.input, d.recording, leaseText(d)]);
    var was = rowsShown[d.device_id];
    if (was && was.sig === sig) return was.tr;
    var tr = h('tr', { 'data-device': d.device_id },
        h('td', { 'data-label': 'Device' }, h('code', { class: 'device-id' }, d.device_id)),
        h('td', { 'data-label': 'State' },
          h('span', { class: ['badge', st[1]], 'data-state': st[0] }, st[0]),
          d.state ? h('span', { class: 'muted' }, ' ' + str(d.state)) : null),
        h('td', { 'data-label': 'Input', class: 'input' }, d.input == null ? '—' : str(d.input)),
        h('td', { 'data-label': 'Recording', class: 'recording' },
          d.recording === true ? 'yes' : d.recording === false ? 'no' : '—'),
        h('td', { 'data-label': 'Lease holder', class: 'holder' }, leaseText(d)));
    /* In its place, so the rows after it stay where they are. */
    if (was && was.tr.parentNode) was.tr.parentNode.replaceChild(tr, was.tr);
    rowsShown[d.device_id] = { sig: sig, tr: tr };
    return tr;
  }

  function renderTable() {
    var next = el.devices.firstChild, keep = {};
    devices.forEach(function (d) {
      var was = rowsShown[d.device_id], tr = deviceRow(d);
      if (was && was.tr === next) next = tr;
      keep[d.device_id] = true;
      if (tr === next) next = next.nextSibling;
      else el.devices.insertBefore(tr, next);
    });
    while (next) { var gone = next; next = next.nextSibling; el.devices.removeChild(gone); }
    Object.keys(rowsShown).forEach(function (id) { if (!keep[id]) delete rowsShown[id]; });
    el.devicesEmpty.hidden = devices.length > 0;
  }

  function renderDevices() {
    renderSelect();
    renderInfo();
    renderTable();
    matrixSoon();
  }

  /* loadDevices() asks for the whole list (multi-MB with a large
   * registry), loadDevices([ids]) for just those devices (?ids=, at most
   * MAX_IDS).  One request at a time and at most one a second; what is
   * asked for meanwhile is gathered into the next. */
  var MAX_IDS = 100;
  var wantAll = false, wantIds = {}, loadingDevices = false, lastDevices = 0, devicesTimer = null;
  var lateDeltas = [];        /* deltas seen while a list was on its way */
  function loadDevices(ids) {
    if (ids) ids.forEach(function (id) { wantIds[id] = true; });
    else wantAll = true;
    pumpDevices();
  }
  function pumpDevices() {
    var ids = Object.keys(wantIds), wait = lastDevices + 1000 - Date.now();
    if (loadingDevices || devicesTimer || (!wantAll && !ids.length)) return;
    if (wait > 0) { devicesTimer = setTimeout(function () { devicesTimer = null; pumpDevices(); }, wait); return; }
    var all = wantAll || ids.length > MAX_IDS;
    wantAll = false;
    wantIds = {};
    loadingDevices = true;
    lastDevices = Date.now();
    OH.fetchJSON(API + '/devices' + (all ? '' : '?ids=' + ids.map(encodeURIComponent).join(',')))
      .then(function (body) {
        var got = (body && body.devices) || [], byId = {};
        if (!all) {
          devices.forEach(function (d) { byId[d.device_id] = d; });
          ids.forEach(function (id) { delete byId[id]; });
          got.forEach(function (d) { byId[d.device_id] = d; });
          got = Object.keys(byId).sort().map(function (id) { return byId[id]; });
        }
        devices = got;
        /* The answer may predate them: applied again (they are idempotent). */
        lateDeltas.forEach(function (d) { applyDelta(d, true); });
        renderDevices();
      }).catch(showError).then(function () {
        loadingDevices = false;
        lateDeltas = [];
        pumpDevices();
      });
  }

  /* A registry delta (already applied to OH.live.snapshot): the rows of the
   * devices it names and every lease, changed in place. */
  function applyDelta(d, quiet) {
    if (loadingDevices && !quiet) lateDeltas.push(d);
    var newcomers = [];
    var mod = API.slice(API.lastIndexOf('/') + 1), byId = {}, changed = false;
    devices.forEach(function (x) { byId[x.device_id] = x; });
    Object.keys(d.devices || {}).forEach(function (id) {
      var doc = d.devices[id] || {}, x = byId[id];
      if (!Array.isArray(doc.modules) || doc.modules.indexOf(mod) < 0) {
        if (x) { delete byId[id]; changed = true; }
        return;
      }
      /* A newcomer's module status is asked for. */
      if (!x) {
        x = byId[id] = { device_id: id, input: null, recording: null, state: null };
        if (!quiet) newcomers.push(id);
      }
      x.online = doc.online === undefined ? null : doc.online;
      x.stale = !!doc.stale;
      x.last_seen = doc.last_seen;
      changed = true;
    });
    (d.removed || []).forEach(function (id) { if (byId[id]) { delete byId[id]; changed = true; } });
    Object.keys(byId).forEach(function (id) {
      var x = byId[id], l = (d.locks || {})[mod + ':' + id];
      var was = x.lease ? x.lease.holder + x.lease.expires_at : '';
      if (was === (l ? l.holder + l.expires_at : '')) return;
      x.lease = l ? { holder: l.holder, expires_at: l.expires_at } : null;
      x.holder = l ? l.holder : null;
      changed = true;
    });
    if (!changed) return;
    devices = Object.keys(byId).sort().map(function (id) { return byId[id]; });
    if (!quiet) renderDevices();
    if (newcomers.length) loadDevices(newcomers);
  }

  function loadSources() {
    return OH.fetchJSON(API + '/sources').then(function (body) {
      OH.clear(el.sources);
      sourceNames = ((body && body.sources) || []).map(str);
      renderMatrix();
      ((body && body.sources) || []).forEach(function (name) {
        el.sources.appendChild(h('option', { value: str(name) }));
      });
    }).catch(function () { /* suggestions only */ });
  }

  el.device.addEventListener('change', renderInfo);

  /* ---- acks ------------------------------------------------------------------- */

  /* Where a code stands in a command's life: the answer to the command
   * (DISPATCHED or a refusal) before what the device made of it.  The POST
   * reply and the event stream race: a device that answers at once gets its
   * COMPLETED onto the page before the POST returns. */
  var OUTCOMES = { COMPLETED: 1, FAILED: 1, TIMEOUT: 1 };
  function causalRank(code) { return OUTCOMES[code] || 0; }

  /* Adds ack (an ack object) to its command's row, creating the row: at
   * the top, or with `older` (the audit trail's records, below) at the
   * bottom while there is room. */
  function noteAck(ack, device, older) {
    if (!ack || !ack.req_id) return;
    var id = String(ack.req_id);
    var entry = acks[id];
    if (!entry) {
      var cells = {
        time: h('td', { 'data-label': 'Time' }),
        action: h('td', { 'data-label': 'Command' }),
        device: h('td', { 'data-label': 'Device' }),
        actor: h('td', { 'data-label': 'By' }),
        result: h('td', { 'data-label': 'Result', class: 'result' })
      };
      entry = acks[id] = {
        row: h('tr', { 'data-req-id': id }, cells.time, cells.action, cells.device, cells.actor,
          cells.result),
        cells: cells,
        events: []
      };
      if (older) {
        if (ackOrder.length >= MAX_ACKS) { delete acks[id]; return; }
        ackOrder.push(id);
        el.acks.appendChild(entry.row);
      } else {
        ackOrder.unshift(id);
        el.acks.insertBefore(entry.row, el.acks.firstChild);
      }
      while (ackOrder.length > MAX_ACKS) {
        var old = acks[ackOrder.pop()];
        if (old) { el.acks.removeChild(old.row); }
      }
      el.acksEmpty.hidden = true;
    }
    /* A late duplicate (the same code twice) adds nothing. */
    if (entry.events.some(function (e) { return e.code === ack.code; })) return;
    entry.events.push(ack);
    /* Stable: equal ranks keep their arrival order. */
    entry.events = entry.events.map(function (e, i) { return [causalRank(e.code), i, e]; })
      .sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; })
      .map(function (x) { return x[2]; });
    var details = ack.details || {};
    var c = entry.cells;
    c.time.textContent = timeOf(entry.events[0].ts);
    c.action.textContent = str(entry.events[0].action);
    c.device.textContent = str(details.device_id || device || c.device.textContent);
    c.actor.textContent = str(entry.events[0].actor);
    OH.clear(c.result);
    entry.events.forEach(function (e, i) {
      if (i) c.result.appendChild(document.createTextNode(' → '));
      c.result.appendChild(h('span', { class: ['badge', badgeClass(e.code)], 'data-code': str(e.code),
        title: e.error ? str(e.error) : null }, str(e.code)));
    });
    var last = entry.events[entry.events.length - 1];
    if (last.error) c.result.appendChild(h('div', { class: 'muted ack-error' }, str(last.error)));
    /* Relayed, with a caveat (a source the host's discovery has not seen). */
    entry.events.forEach(function (e) {
      (Array.isArray(e.warnings) ? e.warnings : []).forEach(function (w) {
        c.result.appendChild(h('div', { class: 'ack-warning' }, str(w)));
      });
    });
  }

  OH.live.on('orch_evt', function (e) {
    if (!e || typeof e.topic !== 'string' || !/\/orchestrator\/ndi\/evt$/.test(e.topic)) return;
    var ack = e.payload;
    if (!ack || typeof ack !== 'object') return;
    var code = ack.code;
    if (code === 'FIRED' || code === 'MISSED' || code === 'SKIPPED' || code === 'SCHEDULED') loadJobs();
    if (code === 'ROUTE_STATE') {
      if (ack.details) routeEvents[ack.details.device_id] = (routeEvents[ack.details.device_id] || 0) + 1;
      applyRoute(ack.details);
      return;
    }
    /* route / unroute / apply_preset: their ROUTE_STATE events follow. */
    if (ack.action === 'preset') { loadPresets(); return; }
    noteAck(ack);
    if (code === 'COMPLETED' || code === 'FAILED' || code === 'TIMEOUT' || code === 'EXPIRED') {
      /* What the device shows now (input, recording): just that device. */
      var row = acks[String(ack.req_id)], dev = (ack.details && ack.details.device_id) ||
        (row && row.cells.device.textContent);
      loadDevices(dev ? [dev] : undefined);
    }
  });
  /* After a reload the table starts with the last 50 commands' outcomes
   * from the audit trail (GET /api/audit, newest first), not empty.  A
   * host without it (audit.enabled false, an older host) leaves it so. */
  function loadRecent() {
    OH.fetchJSON('/api/audit?kind=command&module=ndi&limit=' + MAX_ACKS).then(function (body) {
      (body && body.records || []).forEach(function (r) {
        if (!r.req_id) return;
        noteAck({ req_id: r.req_id, code: r.code, action: r.action, actor: r.actor, ts: r.ts,
          error: r.error, details: { device_id: r.device_id } }, r.device_id, true);
      });
    }, function () { /* not available here: live acks only */ });
  }

  OH.live.on('registry_delta', applyDelta);
  /* After a reconnect, catch up on what the stream did not carry. */
  OH.live.on('open', function () { loadDevices(); loadJobs(); loadRoutes(); loadPresets(); });

  /* An API error as an ack-like row, so a refusal shows where results do. */
  function noteError(err, action, device) {
    var body = err && err.body && err.body.error;
    if (body && body.req_id) {
      noteAck({ req_id: body.req_id, code: body.code || 'ERROR', action: action, actor: actor(),
        error: body.message, details: body.details || { device_id: device } }, device);
    }
    showError(err);
  }

  /* ---- commands and leases -------------------------------------------------------- */

  function needDevice() {
    var id = el.device.value;
    if (!id) showError(new Error('Choose a device first.'));
    return id;
  }

  OH.$$('#ndi-control [data-action]').forEach(function (btn) {
    btn.addEventListener('click', function () {
      var id = needDevice();
      if (!id) return;
      var action = btn.getAttribute('data-action');
      var body = { device_id: id, action: action, actor: actor() };
      var source = (el.source.value || '').trim();
      if (source && action !== 'stop' && action !== 'record_stop') body.source = source;
      showError(null);
      btn.disabled = true;
      OH.postJSON(API + '/send', body).then(function (ack) {
        noteAck(ack, id);
      }).catch(function (err) {
        noteError(err, action, id);
      }).then(function () { btn.disabled = false; });
    });
  });

  OH.$$('#ndi-control [data-lease]').forEach(function (btn) {
    btn.addEventListener('click', function () {
      var id = needDevice();
      if (!id) return;
      var action = btn.getAttribute('data-lease');
      var body = { device_id: id, actor: actor() };
      var secs = Number(el.leaseS.value);
      if (action === 'reserve' && secs > 0) body.lease_s = secs;
      showError(null);
      btn.disabled = true;
      OH.postJSON(API + '/' + action, body).then(function (ack) {
        noteAck(ack, id);
        loadDevices([id]);
      }).catch(function (err) {
        noteError(err, action, id);
      }).then(function () { btn.disabled = false; });
    });
  });

  /* ---- scheduled jobs ---------------------------------------------------------------- */

  function whenText(job) {
    var spec = job.spec || {};
    if (spec.cron) return 'cron ' + str(spec.cron) + (job.tz ? ' (' + str(job.tz) + ')' : '');
    if (spec.at) return 'at ' + str(spec.at);
    return '';
  }

  function commandsText(job) {
    return (job.commands || []).map(function (c) {
      var p = c.params || {};
      return str(c.action) + ' ' + str(c.device_id) + (p.source ? ' ← ' + str(p.source) : '');
    }).join('; ');
  }

  function renderJobs(list) {
    OH.clear(el.jobs);
    list.forEach(function (job) {
      var cancel = h('button', { type: 'button', class: 'danger', 'data-cancel': job.id }, 'Cancel');
      cancel.addEventListener('click', function () {
        cancel.disabled = true;
        OH.fetchJSON(API + '/jobs/' + encodeURIComponent(job.id), { method: 'DELETE' })
          .then(function () { OH.showError(el.jobError, null); })
          .catch(function (err) { OH.showError(el.jobError, err); })
          .then(loadJobs);
      });
      el.jobs.appendChild(h('tr', { 'data-job': job.id },
        h('td', { 'data-label': 'Job' }, job.name ? str(job.name) : h('code', null, str(job.id).slice(0, 8))),
        h('td', { 'data-label': 'When' }, whenText(job)),
        h('td', { 'data-label': 'Commands' }, commandsText(job)),
        h('td', { 'data-label': 'Next run' }, job.next_run ? str(job.next_run) : str(job.state)),
        h('td', { 'data-label': 'Owner' }, str(job.owner)),
        h('td', { 'data-label': '' }, cancel)));
    });
    el.jobsEmpty.hidden = list.length > 0;
  }

  function loadJobs() {
    return OH.fetchJSON(API + '/jobs').then(function (body) {
      renderJobs((body && body.jobs) || []);
    }).catch(function (err) {
      if (err && err.status === 404) {
        OH.clear(el.jobsEmpty).appendChild(document.createTextNode(
          'Scheduling is not available on this host.'));
        el.jobsEmpty.hidden = false;
        return;
      }
      OH.showError(el.jobError, err);
    });
  }

  el.jobWhen.addEventListener('change', function () {
    var cron = el.jobWhen.value === 'cron';
    el.jobCron.hidden = !cron;
    el.jobAt.hidden = cron;
  });

  el.jobForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var id = el.device.value;
    if (!id) { OH.showError(el.jobError, new Error('Choose a device first.')); return; }
    var action = el.jobAction.value;
    var params = {};
    var source = (el.source.value || '').trim();
    if (source && action !== 'stop' && action !== 'record_stop') params.source = source;
    var body = { commands: [{ device_id: id, action: action, params: params }], actor: actor() };
    if (el.jobWhen.value === 'cron') {
      body.cron = (el.jobCron.value || '').trim();
    } else {
      /* datetime-local is the browser's local time: send it as UTC. */
      var t = el.jobAt.value ? new Date(el.jobAt.value) : null;
      if (!t || isNaN(t.getTime())) {
        OH.showError(el.jobError, new Error('Pick a date and time.'));
        return;
      }
      body.at = t.toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    var name = (el.jobName.value || '').trim();
    if (name) body.name = name;
    OH.postJSON(API + '/jobs', body).then(function () {
      OH.showError(el.jobError, null);
      el.jobName.value = '';
      return loadJobs();
    }).catch(function (err) { OH.showError(el.jobError, err); });
  });

  /* ---- routing matrix and presets ---------------------------------------------------- */

  var STATE_CLASS = { converged: 'ok', converging: 'warn', drift: 'bad', offline: 'muted', failed: 'bad' };

  /* Rows: every NDI device and every routed one; columns: every source
   * discovery, a route or a device names, then "none". */
  function matrixModel() {
    var ids = {}, cols = {};
    devices.forEach(function (d) { ids[d.device_id] = { id: d.device_id, input: d.input, recording: d.recording }; });
    Object.keys(routes).forEach(function (id) {
      var r = routes[id];
      var row = ids[id] || (ids[id] = { id: id });
      row.route = r;
      if (r.actual) { row.input = r.actual.source; row.recording = r.actual.recording; }
      if (r.desired.source) cols[r.desired.source] = true;
    });
    sourceNames.forEach(function (n) { cols[n] = true; });
    Object.keys(ids).forEach(function (id) { if (ids[id].input) cols[ids[id].input] = true; });
    return {
      rows: Object.keys(ids).sort().map(function (id) { return ids[id]; }),
      cols: Object.keys(cols).sort()
    };
  }

  function putRoute(id, source, recording) {
    OH.showError(el.routingError, null);
    var seen = routeEvents[id] || 0;
    return OH.postJSON(API + '/routes/' + encodeURIComponent(id),
      { source: source, recording: !!(recording && source), actor: actor() }, 'PUT').then(function (ack) {
      /* The events may have overtaken the reply (a device that answers
       * at once): then they are newer than it. */
      if ((routeEvents[id] || 0) === seen) applyRoute(ack && ack.details);
    }).catch(function (err) { OH.showError(el.routingError, err); });
  }

  var matrixShown = null;      /* what the matrix shows now, as JSON */
  function renderMatrix() {
    var m = matrixModel();
    /* Snapshots come often: redraw only what changed, so a cell being
     * clicked is not replaced under the pointer. */
    var sig = JSON.stringify(m);
    if (sig === matrixShown) return;
    matrixShown = sig;
    var head = h('tr', null, h('th', null, 'Device'), h('th', null, 'Rec'));
    m.cols.forEach(function (c) { head.appendChild(h('th', { 'data-source': c }, c)); });
    head.appendChild(h('th', null, 'none'));
    head.appendChild(h('th', null, 'State'));
    var thead = el.matrix.tHead;
    OH.clear(thead).appendChild(head);
    var body = el.matrix.tBodies[0];
    OH.clear(body);
    m.rows.forEach(function (row) {
      var r = row.route;
      var want = r ? r.desired.source : undefined;
      var state = r ? r.state : 'unrouted';
      var tr = h('tr', { 'data-device': row.id, 'data-state': state });
      tr.appendChild(h('td', { 'data-label': 'Device' }, h('code', { class: 'device-id' }, row.id)));
      var rec = h('input', { type: 'checkbox', 'data-rec': row.id, title: 'Record (the route\'s recording)',
        'aria-label': 'Record on ' + row.id });
      rec.checked = r ? !!r.desired.recording : row.recording === true;
      rec.disabled = !(r && r.desired.source);
      rec.addEventListener('change', function () { putRoute(row.id, want, rec.checked); });
      tr.appendChild(h('td', { 'data-label': 'Rec' }, rec));
      m.cols.concat([null]).forEach(function (c) {
        var desired = r !== undefined && want === c;
        var actual = c === null ? !row.input : row.input === c;
        var mark = desired && actual ? '◉' : desired ? '●' : actual ? '○' : '·';
        var cls = desired && !actual ? 'bad' : desired ? 'ok' : actual ? 'warn' : null;
        var btn = h('button', { type: 'button', class: cls ? ['badge', cls] : null,
          'data-cell': row.id, 'data-source': c === null ? '' : c,
          'data-desired': desired ? '1' : null, 'data-actual': actual ? '1' : null,
          'aria-label': row.id + ' ← ' + (c === null ? 'none' : c),
          title: (desired ? 'route' : '') + (desired && actual ? ', ' : '') + (actual ? 'shown now' : '') }, mark);
        btn.addEventListener('click', function () {
          putRoute(row.id, c, c !== null && rec.checked);
        });
        tr.appendChild(h('td', { 'data-label': c === null ? 'none' : c }, btn));
      });
      var stateCell = h('td', { 'data-label': 'State' },
        h('span', { class: ['badge', STATE_CLASS[state] || 'muted'], 'data-route-state': state }, state));
      if (r && r.error) stateCell.appendChild(h('div', { class: 'muted ack-error' },
        str(r.error) + (r.next_retry ? ' (retry ' + timeOf(r.next_retry) + ')' : '')));
      tr.appendChild(stateCell);
      body.appendChild(tr);
    });
    el.matrixEmpty.hidden = m.rows.length > 0;
  }

  /* A route from an ack or ROUTE_STATE event, or its removal. */
  function applyRoute(r) {
    if (!r || typeof r.device_id !== 'string') return;
    if (loadingRoutes) lateRoutes.push(r);
    if (r.state === 'removed') delete routes[r.device_id];
    else if (r.desired) routes[r.device_id] = r;
    else return;
    matrixSoon();
  }

  /* Events come in bursts (a preset applied to thousands of devices): the
   * matrix is redrawn at most once per 50 ms. */
  var matrixDue = false;
  function matrixSoon() {
    if (matrixDue) return;
    matrixDue = true;
    setTimeout(function () { matrixDue = false; renderMatrix(); }, 50);
  }

  /* Only when the stream (re)connects: the events carry every change after. */
  var loadingRoutes = null, againRoutes = false;
  var lateRoutes = [];        /* ROUTE_STATE details seen while the list was on its way */
  function loadRoutes() {
    if (loadingRoutes) { againRoutes = true; return loadingRoutes; }
    loadingRoutes = OH.fetchJSON(API + '/routes').then(function (body) {
      routes = {};
      ((body && body.routes) || []).forEach(function (r) { routes[r.device_id] = r; });
      /* The list may predate them. */
      lateRoutes.forEach(applyRoute);
      renderMatrix();
    }).catch(function (err) { OH.showError(el.routingError, err); }).then(function () {
      loadingRoutes = null;
      lateRoutes = [];
      if (againRoutes) { againRoutes = false; loadRoutes(); }
    });
    return loadingRoutes;
  }

  function presetName() {
    var n = (el.presetName.value || '').trim();
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(n)) {
      OH.showError(el.routingError, new Error('A preset name is 1-64 of A-Z a-z 0-9 . _ -'));
      return null;
    }
    return n;
  }

  function renderPresets(list) {
    OH.clear(el.presets);
    list.forEach(function (p) {
      var apply = h('button', { type: 'button', class: 'primary', 'data-apply': p.name }, 'Apply');
      apply.addEventListener('click', function () {
        OH.showError(el.routingError, null);
        OH.postJSON(API + '/presets/' + encodeURIComponent(p.name) + '/apply', { actor: actor() })
          .catch(function (err) { OH.showError(el.routingError, err); });
      });
      var schedule = h('button', { type: 'button', 'data-schedule': p.name }, 'Schedule');
      schedule.addEventListener('click', function () {
        var cron = (el.presetCron.value || '').trim();
        if (!cron) { OH.showError(el.routingError, new Error('Give a cron line to schedule it.')); return; }
        OH.postJSON(API + '/jobs', { cron: cron, name: 'preset ' + p.name, actor: actor(),
          commands: [{ action: 'apply_preset', params: { name: p.name } }] })
          .then(function () { OH.showError(el.routingError, null); return loadJobs(); })
          .catch(function (err) { OH.showError(el.routingError, err); });
      });
      var del = h('button', { type: 'button', class: 'danger', 'data-delete-preset': p.name }, 'Delete');
      del.addEventListener('click', function () {
        OH.fetchJSON(API + '/presets/' + encodeURIComponent(p.name), { method: 'DELETE' })
          .then(loadPresets).catch(function (err) { OH.showError(el.routingError, err); });
      });
      var text = Object.keys(p.routes || {}).sort().map(function (id) {
        var r = p.routes[id];
        return id + ' ← ' + (r.source == null ? 'none' : str(r.source)) + (r.recording ? ' (rec)' : '');
      }).join('; ');
      el.presets.appendChild(h('tr', { 'data-preset': p.name },
        h('td', { 'data-label': 'Preset' }, str(p.name)),
        h('td', { 'data-label': 'Routes' }, text),
        h('td', { 'data-label': 'Owner' }, str(p.owner)),
        h('td', { 'data-label': '' }, apply, ' ', schedule, ' ', del)));
    });
    el.presetsEmpty.hidden = list.length > 0;
  }

  function loadPresets() {
    return OH.fetchJSON(API + '/presets').then(function (body) {
      renderPresets(((body && body.presets) || []).sort(function (a, b) { return a.name < b.name ? -1 : 1; }));
    }).catch(function (err) { OH.showError(el.routingError, err); });
  }

  el.presetSave.addEventListener('click', function () {
    var name = presetName();
    if (!name) return;
    var set = {};
    Object.keys(routes).forEach(function (id) {
      set[id] = { source: routes[id].desired.source, recording: routes[id].desired.recording };
    });
    OH.postJSON(API + '/presets/' + encodeURIComponent(name), { routes: set, actor: actor() }, 'PUT').then(function () { OH.showError(el.routingError, null); return loadPresets(); })
      .catch(function (err) { OH.showError(el.routingError, err); });
  });

  /* ---- start ---------------------------------------------------------------------------- */

  loadDevices();
  loadRoutes();
  loadPresets();
  loadSources();
  loadJobs();
  loadRecent();
  /* Module status (input, recording) is not in the registry stream, and
   * lease countdowns move: refresh now and then. */
  setInterval(function () { loadDevices(); }, 10000);
  setInterval(loadSources, 30000);
})();
