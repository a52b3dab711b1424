// Nimbus web console: an instance's serial terminal. xterm.js (vendor/) shows what the
// instance's console sends over a WebSocket (/console/api/instances/ID/terminal, binary frames
// both ways) and sends what is typed; the fit add-on sizes it to its container. Detaching
// closes the socket only: the instance runs on, and a new connection replays the console's
// recent history.
"use strict";

class ConsoleTerminal {
  constructor(container, url, { onStatus } = {}) {
    this.url = url;
    this.onStatus = onStatus || (() => {});
    this.socket = null;
    this.encoder = new TextEncoder();
    this.term = new Terminal({
      convertEol: false,
      cursorBlink: true,
      scrollback: 5000,
      fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      theme: { background: "#0f1720", foreground: "#d8dee9", cursor: "#8fbcbb" },
    });
    this.fit = new FitAddon.FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(container);
    this.refit();
    this.resizeObserver = new ResizeObserver(() => this.refit());
    this.resizeObserver.observe(container);
    this.term.onData((data) => this.send(this.encoder.encode(data)));
    this.term.onBinary((data) => this.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
    // A hook for tests and debugging: the terminal's text, one line per row.
    container.nimbusTerminal = this;
  }

  refit() {
    try {
      this.fit.fit();
    } catch (e) {
      // Not laid out yet (hidden container): the observer calls again once it is.
    }
  }

  connect() {
    this.close();
    // The console replays its recent history on every connection: start from a clean screen.
    this.term.reset();
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.onStatus("connecting…", false);
    let opened = false;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      opened = true;
      this.onStatus("connected", true);
      this.term.focus();
    });
    socket.addEventListener("message", (event) => {
      if (this.socket !== socket) return;
      if (typeof event.data === "string") this.term.write(event.data);
      else this.term.write(new Uint8Array(event.data));
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (!opened) {
        // Refused before the upgrade (an HTTP error the browser does not show: the instance not
        // running, its host's console would not open, the session gone): say so plainly.
        const text = "could not open the console (is the instance running?)";
        this.onStatus(text, false);
        this.term.write(`\r\n\x1b[2m[${text}]\x1b[0m\r\n`);
        return;
      }
      const why = event.code === 1000 || event.code === 1005 ? "" : ` (code ${event.code}${event.reason ? `: ${event.reason}` : ""})`;
      this.onStatus(`disconnected${why}`, false);
      this.term.write(`\r\n\x1b[2m[disconnected${why}]\x1b[0m\r\n`);
    });
  }

  send(bytes) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(bytes);
  }

  // Closes the connection without touching the instance.
  detach() {
    if (!this.socket) return;
    const socket = this.socket;
    this.socket = null;
    socket.close(1000, "detached");
    this.onStatus("detached", false);
    this.term.write("\r\n\x1b[2m[detached]\x1b[0m\r\n");
  }

  close() {
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
    }
  }

  // All of the terminal's buffer as text (the test hook's and copy's source).
  text() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i);
      if (line) lines.push(line.translateToString(true));
    }
    return lines.join("\n");
  }

  dispose() {
    this.close();
    this.resizeObserver.disconnect();
    this.term.dispose();
  }
}
