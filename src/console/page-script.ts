/**
 * The browser side of the console page (served as /console/assets/console.js), plain ES2020
 * for any current browser. Protocol: binary frames are terminal bytes both ways; text frames
 * are JSON control messages ({"type":"resize"|"takeover"} up, {"type":"status"|"error"|"closed"} down).
 */
export const CONSOLE_SCRIPT = String.raw`'use strict';
(function () {
  var box = document.getElementById('terminal');
  var statusEl = document.getElementById('status');
  var takeoverBtn = document.getElementById('takeover');
  var reconnectBtn = document.getElementById('reconnect');
  var machineId = box.getAttribute('data-machine');
  var encoder = new TextEncoder();
  var ws = null;

  var term = new Terminal({ cursorBlink: true, scrollback: 5000, fontFamily: 'monospace', fontSize: 14, convertEol: false });
  term.open(box);
  window.metalConsole = { term: term, status: function () { return statusEl.textContent; } };

  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.className = kind || '';
  }

  // Cell size from a probe in the terminal's font; then as many columns and rows as fit.
  function fit() {
    var probe = document.createElement('span');
    probe.style.cssText = 'position:absolute;visibility:hidden;white-space:pre;font-family:monospace;font-size:14px;line-height:normal';
    probe.textContent = 'WWWWWWWWWWWWWWWWWWWW';
    document.body.appendChild(probe);
    var rect = probe.getBoundingClientRect();
    document.body.removeChild(probe);
    var cw = rect.width / 20, ch = rect.height;
    if (!cw || !ch) return;
    var cols = Math.max(20, Math.floor((box.clientWidth - 8) / cw));
    var rows = Math.max(5, Math.floor((box.clientHeight - 8) / ch));
    if (cols !== term.cols || rows !== term.rows) term.resize(cols, rows);
  }

  function send(data) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(data);
  }

  function sendResize() {
    send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
  }

  function control(msg) {
    if (msg.type === 'status') {
      var who = msg.keyboard ? 'you have the keyboard' : 'keyboard: ' + (msg.owner || 'nobody');
      var state = msg.state === 'open' ? 'connected' : msg.state === 'reconnecting' ? 'BMC disconnected, reconnecting' : 'connecting';
      setStatus(state + ' - ' + who + ' - ' + msg.clients + ' client(s)' + (msg.message ? ' - ' + msg.message : ''), msg.state === 'open' ? 'good' : 'warn');
      takeoverBtn.hidden = !!msg.keyboard;
    } else if (msg.type === 'error') {
      setStatus(msg.message, 'bad');
    } else if (msg.type === 'closed') {
      setStatus('console closed: ' + msg.message, msg.error ? 'bad' : 'warn');
    }
  }

  function url() {
    var u = new URL('/v1/machine/' + encodeURIComponent(machineId) + '/console', location.href);
    u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.toString();
  }

  function connect() {
    reconnectBtn.hidden = true;
    setStatus('connecting...', 'warn');
    var socket = new WebSocket(url());
    socket.binaryType = 'arraybuffer';
    ws = socket;
    socket.onopen = function () { sendResize(); };
    socket.onmessage = function (ev) {
      if (typeof ev.data === 'string') {
        try { control(JSON.parse(ev.data)); } catch (e) { /* not for us */ }
      } else {
        term.write(new Uint8Array(ev.data));
      }
    };
    socket.onclose = function (ev) {
      if (ws !== socket) return;
      ws = null;
      takeoverBtn.hidden = true;
      reconnectBtn.hidden = false;
      if (statusEl.className !== 'bad') setStatus('disconnected (' + ev.code + (ev.reason ? ': ' + ev.reason : '') + ')', 'bad');
    };
  }

  term.onData(function (d) { send(encoder.encode(d)); });
  term.onBinary(function (d) {
    var bytes = new Uint8Array(d.length);
    for (var i = 0; i < d.length; i++) bytes[i] = d.charCodeAt(i) & 255;
    send(bytes);
  });
  term.onResize(sendResize);
  takeoverBtn.onclick = function () { send(JSON.stringify({ type: 'takeover' })); term.focus(); };
  reconnectBtn.onclick = function () { connect(); term.focus(); };
  window.addEventListener('resize', fit);
  fit();
  term.focus();
  connect();
})();
`;
