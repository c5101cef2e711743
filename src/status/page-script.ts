/**
 * The browser side of the status page (served as /status/assets/status.js), plain ES2020. It
 * reads /v1/status/events (server-sent events; each `status` event carries the whole
 * document), keeps the sort column and filter across updates, and writes every value with
 * textContent (never markup from the data).
 */
export const STATUS_SCRIPT = String.raw`'use strict';
(function () {
  var ORDER = ['failing', 'degraded', 'vanished', 'pending', 'ok'];
  var MARK = { failing: '\u2716 failing', degraded: '\u25B2 degraded', vanished: '\u2013 vanished', pending: '\u2026 pending', ok: '\u2713 ok' };
  var tbody = document.querySelector('#bmcs tbody');
  var filterEl = document.getElementById('filter');
  var problemsEl = document.getElementById('problems');
  var liveEl = document.getElementById('live');
  var countEl = document.getElementById('count');
  var doc = null;
  var sort = { key: 'state', dir: 1 };
  var updates = 0;

  function ago(iso) {
    if (!iso) return '';
    var s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 90) return s + 's ago';
    if (s < 5400) return Math.round(s / 60) + 'm ago';
    if (s < 129600) return Math.round(s / 3600) + 'h ago';
    return Math.round(s / 86400) + 'd ago';
  }
  function ipNum(ip) { return ip.split('.').reduce(function (n, p) { return n * 256 + (Number(p) || 0); }, 0); }
  var KEYS = {
    state: function (b) { return ORDER.indexOf(b.state); },
    ip: function (b) { return ipNum(b.ip); },
    mac: function (b) { return b.mac; },
    machine: function (b) { return b.uuid || ''; },
    vendor: function (b) { return (b.vendor || '') + ' ' + (b.model || ''); },
    power: function (b) { return b.power || ''; },
    via: function (b) { return b.protocols ? b.protocols.report : ''; },
    read: function (b) { return b.lastRead ? -Date.parse(b.lastRead.at) : 0; },
    fails: function (b) { return -b.failures.consecutive; },
    reason: function (b) { return b.lastRead && b.lastRead.problem ? b.lastRead.problem.reason : ''; },
    reported: function (b) { return b.lastReportAt ? -Date.parse(b.lastReportAt) : 0; },
    command: function (b) { return b.lastCommand ? -Date.parse(b.lastCommand.at) : 0; },
    viewers: function (b) { return -b.console.viewers; }
  };
  function cmp(a, b) {
    var ka = KEYS[sort.key](a), kb = KEYS[sort.key](b);
    var c = ka < kb ? -1 : ka > kb ? 1 : 0;
    if (c === 0) c = ORDER.indexOf(a.state) - ORDER.indexOf(b.state) || ipNum(a.ip) - ipNum(b.ip);
    return c * sort.dir;
  }
  function text(b) {
    var p = b.lastRead && b.lastRead.problem;
    return [b.state, b.ip, b.mac, b.hostname, b.uuid, b.vendor, b.model, b.power, p && p.reason, p && p.code, p && p.message, b.protocols && b.protocols.report].join(' ').toLowerCase();
  }
  function cell(tr, value, cls) {
    var td = document.createElement('td');
    if (cls) td.className = cls;
    if (value instanceof Node) td.appendChild(value); else td.textContent = value == null ? '' : String(value);
    tr.appendChild(td);
    return td;
  }
  function summary() {
    var dl = document.getElementById('summary');
    dl.textContent = '';
    var s = doc.summary;
    var items = [['BMCs', s.bmcs], ['reachable', s.reachable], ['failing', s.failing], ['degraded', s.degraded], ['not read yet', s.pending], ['vanished', s.vanished], ['commands in the last hour', s.commandsLastHour]];
    var reasons = Object.keys(s.byReason).sort().map(function (r) { return r + ': ' + s.byReason[r]; }).join(', ');
    items.push(['problems by reason', reasons || 'none']);
    items.forEach(function (it) {
      var div = document.createElement('div');
      var dt = document.createElement('dt'); dt.textContent = it[0];
      var dd = document.createElement('dd'); dd.textContent = String(it[1]);
      div.appendChild(dt); div.appendChild(dd); dl.appendChild(div);
    });
    document.getElementById('partition').textContent = '- partition ' + doc.partition;
  }
  function render() {
    if (!doc) return;
    summary();
    var q = filterEl.value.trim().toLowerCase();
    var rows = doc.bmcs.filter(function (b) {
      if (problemsEl.checked && ['failing', 'degraded', 'vanished'].indexOf(b.state) < 0) return false;
      return q === '' || text(b).indexOf(q) >= 0;
    }).sort(cmp);
    tbody.textContent = '';
    rows.forEach(function (b) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-state', b.state);
      tr.setAttribute('data-ip', b.ip);
      var p = b.lastRead && b.lastRead.problem;
      cell(tr, MARK[b.state] || b.state, 'state');
      cell(tr, b.ip, 'mono');
      cell(tr, b.mac, 'mono');
      var machine = document.createTextNode('');
      if (b.uuid) {
        machine = document.createElement('a');
        machine.href = '/console/' + encodeURIComponent(b.uuid);
        machine.textContent = b.uuid;
        machine.title = 'console of ' + b.uuid;
      }
      cell(tr, machine, 'mono');
      cell(tr, [b.vendor, b.model].filter(Boolean).join(' / '));
      cell(tr, [b.power, b.led].filter(Boolean).join(' '));
      cell(tr, b.protocols ? b.protocols.report : '');
      cell(tr, b.lastRead ? ago(b.lastRead.at) + ' (' + b.lastRead.durationMs + ' ms)' : '');
      cell(tr, b.failures.consecutive ? b.failures.consecutive + ' since ' + ago(b.failures.since) : '0');
      var reason = cell(tr, p ? p.reason : '', 'reason');
      if (p) {
        var msg = document.createElement('span');
        msg.className = 'msg';
        msg.textContent = p.code + (p.httpStatus ? ' ' + p.httpStatus : '') + ': ' + p.message;
        reason.appendChild(msg);
      }
      cell(tr, ago(b.lastReportAt));
      cell(tr, b.lastCommand ? b.lastCommand.name + ' ' + b.lastCommand.outcome + ' ' + ago(b.lastCommand.at) : '');
      var consoleCell = cell(tr, b.console.viewers, 'viewers');
      if (b.uuid && b.console.capture !== 'off') {
        // a captured console: its history page; "gap" when the capture is not connected now
        var history = document.createElement('a');
        history.href = '/history/' + encodeURIComponent(b.uuid);
        history.className = 'history';
        history.textContent = b.console.capture === 'gap' ? 'history (gap)' : 'history';
        history.title = 'captured console history of ' + b.uuid;
        consoleCell.appendChild(document.createTextNode(' '));
        consoleCell.appendChild(history);
      }
      tbody.appendChild(tr);
    });
    countEl.textContent = rows.length + ' of ' + doc.bmcs.length + ' BMCs shown';
  }
  document.querySelectorAll('th button').forEach(function (btn) {
    btn.addEventListener('click', function () {
      var key = btn.getAttribute('data-sort');
      sort = { key: key, dir: sort.key === key ? -sort.dir : 1 };
      document.querySelectorAll('th').forEach(function (th) { th.setAttribute('aria-sort', 'none'); });
      btn.parentNode.setAttribute('aria-sort', sort.dir > 0 ? 'ascending' : 'descending');
      render();
    });
  });
  filterEl.addEventListener('input', render);
  problemsEl.addEventListener('change', render);
  var source = new EventSource('/v1/status/events');
  source.addEventListener('status', function (ev) {
    doc = JSON.parse(ev.data);
    updates++;
    liveEl.textContent = 'live, updated ' + new Date(doc.generatedAt).toLocaleTimeString();
    render();
  });
  // an EventSource retries a lost connection itself, but not a refused one (429/503: too many streams)
  source.onerror = function () {
    liveEl.textContent = source.readyState === 2 ? 'no live updates (refused or ended by the server); reload the page to try again' : 'connection lost, retrying...';
  };
  window.metalStatus = { updates: function () { return updates; }, doc: function () { return doc; } };
})();
`;
