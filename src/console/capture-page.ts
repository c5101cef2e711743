/**
 * The browser's history view of a captured console: `/history/{machine id}`, a static page and
 * its script (`/history/assets/history.js`, no inline script under the console's CSP). The page
 * reads the machine id from its own path, lets the user pick a range (last 10 minutes to all that
 * is kept), fetches `/v1/machine/{id}/console/log?since=..&newest=..` with the session's cookie
 * or certificate, and shows it as plain text (escapes stripped, the capture's gap markers
 * highlighted, output that looks like one escaped: HISTORY_MARKER_SOURCE). It asks
 * the server for the newest `keepBytes` of a range (the server reads and sends about that, and
 * says how much it left out) and holds no more than them itself (HISTORY_TAIL_SOURCE), whatever
 * comes: a server that sends more (an older one) costs the transfer, not the tab.
 */

/**
 * What the page holds of a range at most: a machine keeps up to 8 MiB x 4 by default and up to
 * 1 GiB x 1000 as configured, far more than a tab can show as text without freezing or dying.
 */
export const HISTORY_KEEP_BYTES = 4 << 20;

/** The log route's answer to `newest`: bytes of the range's output it left out (capture-routes.ts). */
export const HISTORY_LEFT_OUT_HEADER = 'x-metal-bmc-left-out';

/** The page, with the bytes its script holds of a range at most (`data-keep-bytes`). */
export const historyPage = (keepBytes: number): string => `<!doctype html>
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
<pre id="log" data-keep-bytes="${keepBytes}"></pre>
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

/**
 * How the page tells the capture's gap markers from console output, as page-script source (a test
 * runs it on its own; capture-markers.ts). splitMarkers(text) gives output and markers in turn
 * (output at even places, a marker at odd ones): a marker is the only text enclosed in NULs, which
 * the server takes out of the output. showAsOutput(text) is output as shown: escapes stripped and
 * `[metal-bmc ` as `\[metal-bmc `, so that only a marker shows it as it is, wherever the page
 * wraps a line.
 */
export const HISTORY_MARKER_SOURCE = String.raw`function splitMarkers(text) {
    return text.split(/\x00(\[metal-bmc [^\x00\r\n]*\])\x00/);
  }
  function showAsOutput(text) {
    return stripEscapes(text.replace(/\r\n/g, '\n')).split('[metal-bmc ').join('\\[metal-bmc ');
  }`;

/**
 * The page's bounded read of a range, as page-script source (a test runs it on its own).
 * tailKeeper(cap, leftOut) takes the response's chunks as they come and keeps the newest: a chunk
 * goes as soon as the newer ones hold `cap` bytes without it, so what is held stays under twice
 * the cap however long the range. `leftOut` is what the server left out before the response (its
 * `x-metal-bmc-left-out`), counted in the total. finish() gives the newest `cap` bytes; when
 * anything was left out they start at a line start (the rest of a cut line goes, and with it any
 * escape sequence cut in half), unless they hold no line start at all (one line longer than the
 * cap: shown from the cut). keptState() is the state line's text for it.
 */
export const HISTORY_TAIL_SOURCE = String.raw`function tailKeeper(cap, leftOut) {
    var chunks = [];
    var kept = 0;
    var received = 0;
    // the server starts where the newest bytes begin, not at a line start: what it left out counts
    // as dropped, and the byte before the response as no line feed
    var total = leftOut > 0 ? leftOut : 0;
    // the byte before the oldest one held: a line feed there means that the held bytes start a line
    var lastDropped = -1;
    return {
      add: function (chunk) {
        if (chunk.length === 0) return;
        total += chunk.length;
        received += chunk.length;
        if (chunk.length > cap) {
          // the chunk's own newest cap bytes are all that is kept of it and of what came before (a
          // copy: the rest of its buffer can go)
          chunks = [];
          kept = 0;
          lastDropped = chunk[chunk.length - cap - 1];
          chunk = chunk.slice(chunk.length - cap);
        }
        chunks.push(chunk);
        kept += chunk.length;
        // the oldest chunk goes once the newer ones hold the cap without it
        while (kept - chunks[0].length >= cap) {
          var old = chunks.shift();
          kept -= old.length;
          lastDropped = old[old.length - 1];
        }
      },
      keptBytes: function () { return kept; },
      totalBytes: function () { return total; },
      receivedBytes: function () { return received; },
      finish: function () {
        var all = new Uint8Array(kept);
        var at = 0;
        chunks.forEach(function (c) { all.set(c, at); at += c.length; });
        chunks = [];
        var skip = Math.max(0, kept - cap);
        var before = skip > 0 ? all[skip - 1] : lastDropped;
        var bytes = all.subarray(skip);
        // output left out: the newest bytes start at their first line start, not inside a line
        if (bytes.length < total && before !== 10) {
          for (var i = 0; i < bytes.length && bytes[i] !== 10; i++);
          if (i < bytes.length) bytes = bytes.subarray(i + 1);
        }
        return { bytes: bytes, total: total };
      }
    };
  }
  function sizeText(n) {
    if (n >= 1073741824) return (n / 1073741824).toFixed(1) + ' GiB';
    if (n >= 1048576) return (n / 1048576).toFixed(1) + ' MiB';
    return (n / 1024).toFixed(1) + ' KiB';
  }
  function keptState(shown, total, rangeText) {
    if (shown >= total) return shown + ' bytes, ' + rangeText;
    return 'the last ' + sizeText(shown) + ' of ' + sizeText(total) + ', ' + rangeText +
      ' (older output: narrow the range, or metal-bmc console log / console grep)';
  }`;

export const HISTORY_SCRIPT = `'use strict';
(function () {
  var id = decodeURIComponent(location.pathname.split('/')[2] || '');
  var range = document.getElementById('range');
  var log = document.getElementById('log');
  var state = document.getElementById('state');
  document.getElementById('title').textContent = 'console history of ' + id;
  // what the server allows the page to hold of a range (capture-routes.ts historyKeepBytes)
  var keepBytes = Number(log.getAttribute('data-keep-bytes')) || ${HISTORY_KEEP_BYTES};
  ${HISTORY_STRIP_SOURCE}
  ${HISTORY_TAIL_SOURCE}
  function latin1(bytes) {
    var text = '';
    for (var i = 0; i < bytes.length; i += 8192) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    return text;
  }
  ${HISTORY_MARKER_SOURCE}
  function show(text) {
    log.textContent = '';
    splitMarkers(text).forEach(function (part, i) {
      if (i % 2 === 0) return void log.appendChild(document.createTextNode(showAsOutput(part)));
      var mark = document.createElement('span');
      mark.className = 'gap';
      mark.textContent = part;
      log.appendChild(mark);
    });
  }
  // the range picked last is the one shown: an earlier load still on its way is cancelled, and
  // what it returns anyway is dropped (it would replace the newer range's text)
  var latest = 0;
  var pending = null;
  // the response read as it comes, its older part dropped as newer arrives (tailKeeper): the
  // tab holds a bounded amount however much the range holds. Each read is its own promise, not
  // a chain of them, so a long read does not pile up pending promises either
  function readTail(res, mine) {
    var reader = res.body.getReader();
    var keeper = tailKeeper(keepBytes, Number(res.headers.get('${HISTORY_LEFT_OUT_HEADER}')) || 0);
    return new Promise(function (resolve, reject) {
      function pump() {
        reader.read().then(function (r) {
          if (mine !== latest) {
            reader.cancel().catch(function () {});
            return resolve(null);
          }
          if (r.done) return resolve(keeper.finish());
          keeper.add(r.value);
          state.textContent = 'loading, ' + sizeText(keeper.receivedBytes());
          pump();
        }, reject);
      }
      pump();
    });
  }
  function load() {
    var ms = Number(range.value);
    // the server sends only the newest keepBytes of the range (and says how much it left out)
    var query = '?' + (ms > 0 ? 'since=' + (Date.now() - ms) + '&' : '') + 'newest=' + keepBytes;
    var mine = ++latest;
    if (pending) pending.abort();
    pending = new AbortController();
    state.textContent = 'loading';
    fetch('/v1/machine/' + encodeURIComponent(id) + '/console/log' + query, { credentials: 'same-origin', signal: pending.signal })
      .then(function (res) {
        if (!res.ok) return res.text().then(function (t) { throw new Error('HTTP ' + res.status + ': ' + t); });
        return readTail(res, mine);
      })
      .then(function (tail) {
        if (mine !== latest || !tail) return;
        show(latin1(tail.bytes));
        state.textContent = keptState(tail.bytes.length, tail.total, range.options[range.selectedIndex].text);
      })
      .catch(function (err) { if (mine === latest) state.textContent = String(err.message || err); });
  }
  range.addEventListener('change', load);
  load();
})();
`;
