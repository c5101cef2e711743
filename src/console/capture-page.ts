/**
 * The browser's history view of a captured console: `/history/{machine id}`, a static page and
 * its script (`/history/assets/history.js`, no inline script under the console's CSP). The page
 * reads the machine id from its own path, lets the user pick a range (last 10 minutes to all that
 * is kept), fetches `/v1/machine/{id}/console/log?since=..` with the session's cookie or
 * certificate, and shows it as plain text (escapes stripped, gap markers highlighted).
 */
export const HISTORY_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>console history</title>
<style>
body { margin: 0; font: 14px system-ui, sans-serif; background: #111; color: #ddd; }
header { display: flex; gap: 12px; align-items: center; padding: 8px 12px; background: #222; }
h1 { font-size: 15px; margin: 0; font-weight: 600; }
pre { margin: 0; padding: 8px 12px; font: 13px ui-monospace, monospace; white-space: pre-wrap; word-break: break-all; }
.gap { color: #f5a623; }
#state { color: #999; }
</style></head>
<body>
<header><h1 id="title">console history</h1>
<label>range <select id="range">
<option value="600000">last 10 minutes</option><option value="3600000" selected>last hour</option>
<option value="21600000">last 6 hours</option><option value="86400000">last 24 hours</option>
<option value="604800000">last 7 days</option><option value="0">all that is kept</option>
</select></label>
<span id="state"></span></header>
<pre id="log"></pre>
<script src="/history/assets/history.js"></script>
</body></html>
`;

/**
 * The page's escape stripping, as page-script source (a test runs it on its own): CSI, OSC/DCS
 * strings, two-byte escapes, other controls but tab and line feed. A string sequence (OSC, DCS,
 * SOS, PM, APC) runs to BEL or ESC \ and holds no other ESC, so the search for its end stops at
 * the next ESC and the whole is linear in the text: a lazy search to the end of the text
 * (`[\s\S]*?`) started over at every ESC ] without an end, and 400 KB of them froze the tab for
 * 30 s. A sequence without its end is stripped as a two-byte escape, as before.
 */
export const HISTORY_STRIP_SOURCE = String.raw`function stripEscapes(text) {
    return text.replace(/\x1b\[[\x20-\x3f]*[\x40-\x7e]|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[\x20-\x2f]?[\x30-\x7e]|[\x00-\x08\x0b-\x1f\x7f]/g, '');
  }`;

export const HISTORY_SCRIPT = `'use strict';
(function () {
  var id = decodeURIComponent(location.pathname.split('/')[2] || '');
  var range = document.getElementById('range');
  var log = document.getElementById('log');
  var state = document.getElementById('state');
  document.getElementById('title').textContent = 'console history of ' + id;
  ${HISTORY_STRIP_SOURCE}
  function show(text) {
    log.textContent = '';
    stripEscapes(text.replace(/\\r\\n/g, '\\n')).split('\\n').forEach(function (line) {
      if (/^\\[metal-bmc \\S+: /.test(line)) {
        var mark = document.createElement('span');
        mark.className = 'gap';
        mark.textContent = line + '\\n';
        log.appendChild(mark);
      } else log.appendChild(document.createTextNode(line + '\\n'));
    });
  }
  // the range picked last is the one shown: an earlier load still on its way is cancelled, and
  // what it returns anyway is dropped (it would replace the newer range's text)
  var latest = 0;
  var pending = null;
  function load() {
    var ms = Number(range.value);
    var query = ms > 0 ? '?since=' + (Date.now() - ms) : '';
    var mine = ++latest;
    if (pending) pending.abort();
    pending = new AbortController();
    state.textContent = 'loading';
    fetch('/v1/machine/' + encodeURIComponent(id) + '/console/log' + query, { credentials: 'same-origin', signal: pending.signal })
      .then(function (res) {
        if (!res.ok) return res.text().then(function (t) { throw new Error('HTTP ' + res.status + ': ' + t); });
        return res.arrayBuffer();
      })
      .then(function (buf) {
        if (mine !== latest) return;
        var bytes = new Uint8Array(buf);
        var text = '';
        for (var i = 0; i < bytes.length; i += 8192) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
        show(text);
        state.textContent = bytes.length + ' bytes, ' + range.options[range.selectedIndex].text;
      })
      .catch(function (err) { if (mine === latest) state.textContent = String(err.message || err); });
  }
  range.addEventListener('change', load);
  load();
})();
`;
