/*
 * /docs: /openapi.json rendered readably, grouped by tag, each operation a
 * <details> with its parameters, request body and responses.  No external
 * viewer: the document is small and the CSP would not allow one anyway.
 */
(function () {
  'use strict';
  var OH = window.OH, h = OH.h;
  var root = OH.$('#docs');
  var filter = OH.$('#docs-filter');
  var METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

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

  function operation(path, method, op) {
    var search = [method, path, op.summary || '', op.description || '', (op.tags || []).join(' ')]
      .join(' ').toLowerCase();
    return h('details', { class: 'op', 'data-search': search, 'data-path': path, 'data-method': method },
      h('summary', null,
        h('span', { class: ['method', 'm-' + method] }, method.toUpperCase()), ' ',
        h('code', { class: 'path' }, path), ' ',
        h('span', { class: 'op-summary' }, op.summary || '')),
      h('div', { class: 'op-body' },
        op.description ? h('p', { class: 'op-description' }, op.description) : null,
        params(op.parameters), body(op.requestBody), responses(op.responses)));
  }

  function render(doc) {
    OH.clear(root);
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
  OH.fetchJSON('/openapi.json').then(render, function (err) {
    OH.showError(OH.clear(root).appendChild(h('p')), err);
  });
})();
