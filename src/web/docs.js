/*
 * /docs: /openapi.json rendered readably, grouped by tag, each operation a
 * <details> with its parameters, request body and responses, and a form to
 * try it.  No external viewer: the document is small and the CSP would not
 * allow one anyway.
 *
 * Authentication: the document's security schemes are shown above the
 * routes, with a token field.  The token is the one the header's form keeps
 * (OH.token, for this tab only); a call to an operation that names a scheme
 * sends it as "Authorization: Bearer ...", and the reply's status and body
 * are shown as they came, errors included.
 */
(function () {
  'use strict';
  var OH = window.OH, h = OH.h;
  var root = OH.$('#docs');
  var filter = OH.$('#docs-filter');
  var METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
  var tokenForm = OH.$('#docs-token-form');
  var tokenInput = OH.$('#docs-token');
  var tokenState = OH.$('#docs-token-state');

  function schemaText(s) {
    if (!s) return '';
    if (s.$ref) return s.$ref.replace(/^#\/components\/schemas\//, '');
    if (s.type === 'array') return 'array of ' + (schemaText(s.items) || 'any');
    var t = s.type || (s.properties ? 'object' : '');
    if (s.enum) t += ' (' + s.enum.map(String).join(' | ') + ')';
    if (s.format) t += ' <' + s.format + '>';
    return t;
  }

  function params(list) {
    if (!list || !list.length) return null;
    return h('div', { class: 'op-section' }, h('h4', null, 'Parameters'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'params' },
        h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'In'),
          h('th', null, 'Type'), h('th', null, 'Description'))),
        h('tbody', null, list.map(function (p) {
          return h('tr', null,
            h('td', { 'data-label': 'Name' }, h('code', null, p.name || '?'),
              p.required ? h('span', { class: 'req', title: 'required' }, ' *') : null),
            h('td', { 'data-label': 'In' }, p.in || ''),
            h('td', { 'data-label': 'Type' }, schemaText(p.schema)),
            h('td', { 'data-label': 'Description' }, p.description || ''));
        })))));
  }

  function body(rb) {
    if (!rb) return null;
    var content = rb.content || {};
    return h('div', { class: 'op-section' }, h('h4', null, 'Request body' + (rb.required ? ' (required)' : '')),
      rb.description ? h('p', null, rb.description) : null,
      Object.keys(content).map(function (type) {
        var c = content[type] || {};
        return h('div', null, h('code', null, type),
          c.schema ? h('pre', { class: 'schema' }, JSON.stringify(c.schema, null, 2)) : null,
          c.example !== undefined ? h('pre', { class: 'schema' }, JSON.stringify(c.example, null, 2)) : null);
      }));
  }

  function responses(r) {
    if (!r) return null;
    return h('div', { class: 'op-section' }, h('h4', null, 'Responses'),
      h('ul', { class: 'responses' }, Object.keys(r).sort().map(function (code) {
        var v = r[code] || {};
        return h('li', null, h('code', { class: 'status s' + String(code).charAt(0) }, code), ' ',
          v.description || '', v.content ? h('span', { class: 'muted' }, ' (' + Object.keys(v.content).join(', ') + ')') : null);
      })));
  }

  function needsToken(op) {
    return !!(op.security && op.security.length);
  }

  /* A body to start from: the schema's required fields with a placeholder
   * of their type (a default or the first enum value where there is one). */
  function skeleton(schema) {
    schema = schema || {};
    if (schema.default !== undefined) return schema.default;
    if (schema.enum) return schema.enum[0];
    switch (schema.type) {
      case 'object':
        var out = {};
        (schema.required || []).forEach(function (k) {
          out[k] = skeleton((schema.properties || {})[k]);
        });
        return out;
      case 'array': return [];
      case 'integer': case 'number': return 0;
      case 'boolean': return false;
      default: return '';
    }
  }

  /* A stream never ends, so it is not tried here. */
  function isStream(op) {
    var ok = (op.responses || {})['200'] || {};
    return !!(ok.content && ok.content['text/event-stream']);
  }

  function tryIt(path, method, op) {
    if (isStream(op)) {
      return h('div', { class: 'op-section try' }, h('h4', null, 'Try it'),
        h('p', { class: 'muted' }, 'An endless stream: open it with EventSource (the pages do).'));
    }
    var inputs = {};
    var fields = (op.parameters || []).filter(function (p) {
      return p.in === 'path' || p.in === 'query';
    }).map(function (p) {
      var input = h('input', { type: 'text', name: p.name, 'data-in': p.in,
        placeholder: p.in + (p.required ? ', required' : ', optional'),
        'aria-label': p.name });
      inputs[p.name] = input;
      return h('label', { class: 'try-param' }, h('code', null, p.name), ' ', input);
    });
    var rb = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
    var bodyInput = rb ? h('textarea', { class: 'try-body', rows: '6', spellcheck: 'false',
      'aria-label': 'request body' }, JSON.stringify(skeleton(rb.schema), null, 2)) : null;
    var status = h('p', { class: 'try-status', role: 'status' });
    var result = h('pre', { class: 'schema try-result', hidden: '' });
    var button = h('button', { type: 'submit', class: 'primary' }, 'Send');
    var lock = needsToken(op) ? h('span', { class: 'muted' },
      OH.token.get() ? ' with the token' : ' (no token set: the host may answer 401)') : null;
    var form = h('form', { class: 'try-form' }, fields, bodyInput,
      h('div', { class: 'toolbar' }, button, lock));
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var url = path, query = [];
      Object.keys(inputs).forEach(function (name) {
        var el = inputs[name], v = el.value.trim();
        if (el.getAttribute('data-in') === 'path') {
          url = url.replace('{' + name + '}', encodeURIComponent(v));
        } else if (v) {
          query.push(encodeURIComponent(name) + '=' + encodeURIComponent(v));
        }
      });
      if (query.length) url += '?' + query.join('&');
      var headers = { Accept: 'application/json' };
      var t = OH.token.get();
      if (t && needsToken(op)) headers.Authorization = 'Bearer ' + t;
      var opts = { method: method.toUpperCase(), headers: headers, credentials: 'same-origin' };
      if (bodyInput) {
        headers['Content-Type'] = 'application/json';
        opts.body = bodyInput.value;
      }
      button.disabled = true;
      status.textContent = opts.method + ' ' + url + ' …';
      fetch(url, opts).then(function (resp) {
        return resp.text().then(function (text) {
          var shown = text;
          try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
          if (shown.length > 20000) shown = shown.slice(0, 20000) + '\n…';
          status.textContent = opts.method + ' ' + url + ' → ' + resp.status + ' ' + resp.statusText;
          status.setAttribute('data-status', String(resp.status));
          result.textContent = shown;
          result.hidden = false;
        });
      }, function (err) {
        status.textContent = opts.method + ' ' + url + ': ' + err.message;
        status.setAttribute('data-status', 'error');
      }).then(function () { button.disabled = false; });
    });
    return h('div', { class: 'op-section try' }, h('h4', null, 'Try it'), form, status, result);
  }

  /* The document's security schemes, and the token the calls send. */
  function renderAuth(doc) {
    var schemes = (doc.components || {}).securitySchemes || {};
    var names = Object.keys(schemes);
    var box = OH.$('#docs-auth');
    if (!names.length) return;
    var list = OH.clear(OH.$('#docs-schemes'));
    names.forEach(function (name) {
      var s = schemes[name] || {};
      list.appendChild(h('p', { class: 'scheme', 'data-scheme': name },
        h('code', null, name), ' ',
        h('span', { class: 'badge' }, s.type === 'http' ? 'HTTP ' + (s.scheme || '') : (s.type || '')),
        s.description ? h('span', null, ' ' + s.description) : null));
    });
    box.hidden = false;
    showTokenState();
  }

  function showTokenState() {
    tokenState.textContent = OH.token.get()
      ? 'A token is set: calls marked “token” send it as Authorization: Bearer.'
      : 'No token set: calls marked “token” go without one.';
  }

  function operation(path, method, op) {
    var search = [method, path, op.summary || '', op.description || '', (op.tags || []).join(' ')]
      .join(' ').toLowerCase();
    return h('details', { class: 'op', 'data-search': search, 'data-path': path, 'data-method': method },
      h('summary', null,
        h('span', { class: ['method', 'm-' + method] }, method.toUpperCase()), ' ',
        h('code', { class: 'path' }, path), ' ',
        h('span', { class: 'op-summary' }, op.summary || ''),
        needsToken(op) ? h('span', { class: 'badge lock', title: 'needs an API token when http.tokens is configured' }, 'token') : null),
      h('div', { class: 'op-body' },
        op.description ? h('p', { class: 'op-description' }, op.description) : null,
        params(op.parameters), body(op.requestBody), responses(op.responses),
        tryIt(path, method, op)));
  }

  function render(doc) {
    OH.clear(root);
    renderAuth(doc);
    var info = doc.info || {};
    root.appendChild(h('p', { class: 'api-info' },
      h('strong', null, info.title || 'API'), ' ', h('span', { class: 'muted' }, info.version || ''),
      info.description ? h('span', null, ' — ' + info.description) : null));
    var groups = {};
    var order = [];
    Object.keys(doc.paths || {}).sort().forEach(function (path) {
      var item = doc.paths[path] || {};
      METHODS.forEach(function (m) {
        if (!item[m]) return;
        var tag = (item[m].tags && item[m].tags[0]) || 'core';
        if (!groups[tag]) { groups[tag] = []; order.push(tag); }
        groups[tag].push(operation(path, m, item[m]));
      });
    });
    order.sort(function (a, b) { return a === 'core' ? -1 : b === 'core' ? 1 : a < b ? -1 : a > b ? 1 : 0; });
    order.forEach(function (tag) {
      root.appendChild(h('section', { class: 'tag-group', 'data-tag': tag },
        h('h2', null, tag), groups[tag]));
    });
    if (!order.length) root.appendChild(h('p', { class: 'muted' }, 'No routes.'));
    applyFilter();
  }

  function applyFilter() {
    var q = (filter.value || '').trim().toLowerCase();
    OH.$$('details.op', root).forEach(function (d) {
      d.hidden = q && d.getAttribute('data-search').indexOf(q) < 0;
    });
    OH.$$('section.tag-group', root).forEach(function (s) {
      s.hidden = !OH.$$('details.op', s).some(function (d) { return !d.hidden; });
    });
  }

  filter.addEventListener('input', applyFilter);
  /* The same token as the header's form, and handled the same way: kept
   * for the tab, then the page starts over so the live stream and the
   * header use it too. */
  tokenForm.addEventListener('submit', function (ev) {
    ev.preventDefault();
    OH.token.set(tokenInput.value.trim());
    location.reload();
  });
  OH.$('#docs-token-forget').addEventListener('click', function () {
    OH.token.set('');
    location.reload();
  });
  OH.fetchJSON('/openapi.json').then(render, function (err) {
    OH.showError(OH.clear(root).appendChild(h('p')), err);
  });
})();
