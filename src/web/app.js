/*
 * Shared by every page (loaded first by the shell): window.OH.
 *
 *   OH.h(tag, attrs, ...children)  builds DOM; strings become text nodes, so
 *                                  device data can never turn into markup
 *   OH.clear(el), OH.$(sel), OH.$$(sel)
 *   OH.live.on(name, fn)           server-sent events from /api/events:
 *                                  "registry" (the whole current snapshot,
 *                                  also after each delta is applied),
 *                                  "registry_delta" (the delta itself, after
 *                                  it was applied), "orch_evt"
 *                                  ({topic, payload}), "broker" ({mqtt}),
 *                                  "audit" (one stored audit record),
 *                                  "open" / "lost" (the stream itself)
 *   OH.live.snapshot               the registry as the deltas made it (the
 *                                  host sends one snapshot, then only what
 *                                  changed; a reconnect resumes from the last
 *                                  event id), or null
 *   OH.live.brokerUp()             whether the host has its MQTT broker
 *                                  (the header badge); while it has not,
 *                                  #broker-banner shows and every control
 *                                  marked data-needs-broker is disabled
 *   OH.fetchJSON(url, opts)        fetch + JSON; throws an Error whose message
 *                                  is the API's {"error": {code, message}}
 *   OH.postJSON(url, body)         the same with a JSON body
 *   OH.showError(el, err)          puts err's message into el (as text)
 *   OH.ago(iso), OH.list(value)    formatting helpers
 *   OH.token.get(), OH.token.set(t) the API token (http.tokens), kept in
 *                                  sessionStorage: sent as "Authorization:
 *                                  Bearer" by fetchJSON and as ?access_token=
 *                                  on the event stream; 401/403 answers are
 *                                  shown in the header (#auth-msg)
 *
 * Nothing here uses innerHTML: the Content-Security-Policy forbids inline
 * script and style, and textContent keeps a device named
 * <img src=x onerror=alert(1)> a harmless string.
 */
(function () {
  'use strict';

  var FORBIDDEN_ATTR = /^(on|style$|srcdoc$)/i;

  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(el, c); });
    } else if (child instanceof Node) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(String(child)));
    }
  }

  /* h('td', {class: 'x', 'data-label': 'Device'}, 'text', otherNode) */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (FORBIDDEN_ATTR.test(k)) throw new Error('OH.h: attribute ' + k + ' is not allowed');
        if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
        else if (k === 'text') el.textContent = String(v);
        else if (k === 'href' && !/^(\/|#|https?:)/.test(String(v))) throw new Error('OH.h: unsafe href');
        else el.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  /* ---- API token ---------------------------------------------------------- */

  /* Entered once per tab (the header's token form) and kept in
   * sessionStorage, so it goes when the tab does. */
  var TOKEN_KEY = 'oh.api_token';
  var token = {
    get: function () {
      try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
    },
    set: function (t) {
      try {
        if (t) sessionStorage.setItem(TOKEN_KEY, t);
        else sessionStorage.removeItem(TOKEN_KEY);
      } catch (e) { /* storage disabled: the token lasts this page only */ }
    }
  };

  function authHeaders(headers) {
    var t = token.get();
    if (t && !headers.Authorization) headers.Authorization = 'Bearer ' + t;
    return headers;
  }

  /* Says plainly in the header why the API refused, and opens the token
   * form when a (better) token would help. */
  function showAuthProblem(status, message) {
    var el = document.getElementById('auth-msg');
    var form = document.getElementById('token-form');
    if (status === 401 && form) form.hidden = false;
    if (!el) return;
    el.hidden = false;
    el.setAttribute('data-status', String(status));
    el.textContent = status === 401
      ? (token.get() ? '401 Unauthorized: the API token was not accepted. Enter another.'
        : '401 Unauthorized: this host needs an API token. Enter it above.')
      : '403 Forbidden: ' + (message || 'your token\'s role may not do this.');
  }

  /* ---- fetch helpers ---------------------------------------------------- */

  function fetchJSON(url, opts) {
    opts = opts || {};
    var headers = authHeaders(Object.assign({ Accept: 'application/json' }, opts.headers || {}));
    return fetch(url, Object.assign({}, opts, { headers: headers, credentials: 'same-origin' }))
      .then(function (resp) {
        return resp.text().then(function (text) {
          var body = null;
          try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
          if (!resp.ok) {
            var err = body && body.error ? body.error : null;
            if (resp.status === 401 || resp.status === 403) {
              showAuthProblem(resp.status, err && err.message);
            }
            var e2 = new Error(err && err.message ? err.message
              : 'HTTP ' + resp.status + ' ' + resp.statusText);
            e2.status = resp.status;
            e2.code = err && err.code ? err.code : null;
            e2.body = body;
            throw e2;
          }
          return body;
        });
      });
  }

  function postJSON(url, body, method) {
    return fetchJSON(url, {
      method: method || 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body === undefined ? {} : body)
    });
  }

  function showError(el, err) {
    if (!el) return;
    clear(el);
    if (!err) { el.hidden = true; return; }
    el.hidden = false;
    el.classList.add('error');
    append(el, (err.code ? err.code + ': ' : '') + (err.message || String(err)));
  }

  /* ---- formatting -------------------------------------------------------- */

  /* "12 s ago" for an ISO time; "" for nothing. */
  function ago(iso) {
    if (!iso) return '';
    var t = Date.parse(iso);
    if (isNaN(t)) return String(iso);
    var s = Math.round((Date.now() - t) / 1000);
    if (s < 0) s = 0;
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  /* Any JSON value as a list of short strings (modules, labels...). */
  function list(v) {
    if (v === null || v === undefined) return [];
    if (Array.isArray(v)) {
      return v.map(function (x) { return typeof x === 'string' ? x : JSON.stringify(x); });
    }
    if (typeof v === 'object') {
      return Object.keys(v).map(function (k) {
        var x = v[k];
        if (x === true || x === null) return k;
        return k + '=' + (typeof x === 'string' ? x : JSON.stringify(x));
      });
    }
    return [String(v)];
  }

  /* ---- live updates --------------------------------------------------------- */

  var listeners = {};
  var live = {
    snapshot: null,
    broker: null,
    connected: false,
    brokerUp: function () { return brokerUp(); },
    on: function (name, fn) {
      (listeners[name] = listeners[name] || []).push(fn);
      /* Late subscribers get what is already known. */
      if (name === 'registry' && live.snapshot) fn(live.snapshot);
      if (name === 'broker' && live.broker) fn(live.broker);
      return live;
    }
  };

  function emit(name, data) {
    (listeners[name] || []).forEach(function (fn) {
      try { fn(data); } catch (e) { console.error('OH.live ' + name + ' handler:', e); }
    });
  }

  function setLive(state, text) {
    var el = document.getElementById('live-state');
    if (!el) return;
    el.setAttribute('data-state', state);
    el.textContent = text;
  }

  /* The badge says it; the banner explains it; controls that need the
   * broker (data-needs-broker: a button, or a fieldset of them) cannot be
   * used meanwhile.  A fieldset's own disabled state leaves its buttons'
   * alone, so a page may still disable one while a request runs. */
  function setBroker(state) {
    var down = state !== 'connected';
    $$('[data-broker-badge]').forEach(function (el) {
      el.setAttribute('data-state', state);
      el.textContent = state;
    });
    var banner = document.getElementById('broker-banner');
    if (banner) banner.hidden = !down;
    $$('[data-needs-broker]').forEach(function (el) { el.disabled = down; });
  }

  function brokerUp() {
    var badge = $('[data-broker-badge]');
    return !badge || badge.getAttribute('data-state') === 'connected';
  }

  var es = null, retryMs = 2000, retryTimer = null;

  function parse(ev) {
    try { return JSON.parse(ev.data); } catch (e) {
      console.warn('OH.live: bad ' + ev.type + ' event');
      return null;
    }
  }

  function connect() {
    retryTimer = null;
    if (!window.EventSource) { setLive('offline', 'live: unsupported'); return; }
    /* EventSource cannot send headers: the host reads the token from the
     * query on this one path. */
    var t = token.get();
    es = new EventSource('/api/events' + (t ? '?access_token=' + encodeURIComponent(t) : ''));
    es.onopen = function () {
      retryMs = 2000;
      live.connected = true;
      setLive('open', 'live');
      emit('open', null);
    };
    es.addEventListener('registry', function (ev) {
      var snap = parse(ev);
      if (!snap) return;
      live.snapshot = snap;
      emit('registry', snap);
    });
    /* What changed since the event we saw last (the host keeps each
     * stream's place, and EventSource resends it as Last-Event-ID on a
     * reconnect): applied to our copy, which the pages then redraw. */
    es.addEventListener('registry_delta', function (ev) {
      var d = parse(ev), snap = live.snapshot;
      if (!d) return;
      if (!snap || snap.seq !== d.since) {
        /* Not the state it was made for: start over with a whole
         * snapshot (a new EventSource sends no Last-Event-ID). */
        es.close();
        connect();
        return;
      }
      Object.keys(d.devices).forEach(function (id) { snap.devices[id] = d.devices[id]; });
      d.removed.forEach(function (id) { delete snap.devices[id]; });
      snap.locks = d.locks;
      snap.modules = d.modules;
      snap.ts = d.ts;
      snap.seq = d.seq;
      emit('registry_delta', d);
      emit('registry', snap);
    });
    es.addEventListener('broker', function (ev) {
      var b = parse(ev);
      if (!b) return;
      live.broker = b;
      setBroker(b.mqtt === 'connected' ? 'connected' : 'disconnected');
      emit('broker', b);
    });
    es.addEventListener('orch_evt', function (ev) {
      var e = parse(ev);
      if (e) emit('orch_evt', e);
    });
    es.addEventListener('audit', function (ev) {
      var r = parse(ev);
      if (r) emit('audit', r);
    });
    es.onerror = function () {
      if (live.connected) emit('lost', null);
      live.connected = false;
      setLive('offline', 'live: reconnecting');
      /* The browser retries by itself unless the stream was refused
       * (CLOSED); then we start again, backing off up to 30 s. */
      if (es.readyState === EventSource.CLOSED && !retryTimer) {
        es.close();
        /* An EventSource does not say why; ask once, cheaply. */
        fetch('/api/registry', { method: 'HEAD', headers: authHeaders({}), credentials: 'same-origin' })
          .then(function (resp) {
            if (resp.status === 401 || resp.status === 403) {
              setLive('offline', 'live: ' + resp.status + (resp.status === 401 ? ' token needed' : ' forbidden'));
              showAuthProblem(resp.status, null);
            }
          }, function () { /* the host is away: keep retrying */ });
        retryTimer = setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      }
    };
  }

  /* The header's token form: set, change or forget the token, then reload
   * so every fetch and the stream start over with it. */
  function initTokenForm() {
    var form = document.getElementById('token-form');
    var input = document.getElementById('token-input');
    var toggle = document.getElementById('token-toggle');
    var forget = document.getElementById('token-forget');
    if (!form || !input) return;
    if (toggle) {
      toggle.textContent = token.get() ? 'token \u2713' : 'token';
      toggle.addEventListener('click', function () {
        form.hidden = !form.hidden;
        if (!form.hidden) input.focus();
      });
    }
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      token.set(input.value.trim());
      input.value = '';
      location.reload();
    });
    if (forget) {
      forget.addEventListener('click', function () {
        token.set('');
        location.reload();
      });
    }
  }

  window.addEventListener('pagehide', function () { if (es) es.close(); });
  window.addEventListener('pageshow', function (ev) {
    if (ev.persisted && es && es.readyState === EventSource.CLOSED) connect();
  });

  window.OH = {
    h: h, clear: clear, $: $, $$: $$,
    fetchJSON: fetchJSON, postJSON: postJSON, showError: showError,
    ago: ago, list: list,
    live: live, token: token
  };

  initTokenForm();
  /* The state the page was rendered with, until the stream says more. */
  var badge = $('[data-broker-badge]');
  if (badge) setBroker(badge.getAttribute('data-state') || 'disconnected');
  connect();
})();
