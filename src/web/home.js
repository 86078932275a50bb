/*
 * The start page: the server rendered the plugins and the broker state;
 * this keeps the device counts current (the broker badge is app.js's).
 */
(function () {
  'use strict';
  var OH = window.OH;

  OH.live.on('registry', function (snap) {
    var devices = snap.devices || {};
    var ids = Object.keys(devices);
    var online = 0, stale = 0;
    ids.forEach(function (id) {
      var d = devices[id] || {};
      if (d.online === true && d.stale) stale++;
      else if (d.online === true) online++;
    });
    OH.$('#device-count').textContent = String(ids.length);
    OH.$('#online-count').textContent = String(online);
    OH.$('#stale-count').textContent = String(stale);
  });
})();
