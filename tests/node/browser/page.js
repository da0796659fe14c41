// Runs in headless Chromium, loaded by index.html (see ../browser.test.js). Query string:
//   run    id of this run, echoed back in the report
//   cases  JSON array of connections to try, one after the other, each
//            { name, hub, token, want, wait_ms }
//          hub:     hub URL (http://HOST:PORT/v1/hub/...?site_id=...)
//          token:   access token; when absent the connection is built without an accessTokenFactory
//          want:    stop collecting once this many ReceiveMessage events arrived ...
//          wait_ms: ... or after this long
// The report, { run, userAgent, pageMs, results: [...] }, is POSTed as JSON to /report?run=RUN on the server
// that served this page, and also written into the page.
"use strict";
(async function main() {
  const params = new URLSearchParams(location.search);
  const run = params.get("run");
  const report = { run, userAgent: navigator.userAgent, pageMs: null, error: null, results: [] };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const elapsed = () => Math.round(performance.now()); // ms since the navigation started

  // Every WebSocket the page opens is recorded in the current case's result. The client takes the global
  // WebSocket when a connection is built, so it uses this wrapper through its ordinary, default path; the URL is
  // where a browser must put the token, since it cannot set an Authorization header on a WebSocket.
  let socketUrls = [];
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class RecordingWebSocket extends NativeWebSocket {
    constructor(url, protocols) {
      socketUrls.push(String(url));
      super(url, protocols);
    }
  };

  async function runCase(spec) {
    const result = {
      name: spec.name,
      started: false,
      error: null,
      closed: null,
      messages: [], // ReceiveMessage arguments, as received
      socketUrls: (socketUrls = []),
      logs: [], // the client's own log lines (Debug and above), with the page time
    };
    try {
      const options = { skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets };
      if (spec.token !== undefined && spec.token !== null) options.accessTokenFactory = () => spec.token;
      const logger = {
        log(level, message) {
          if (level >= signalR.LogLevel.Debug && result.logs.length < 100) {
            result.logs.push(`${elapsed()} ms ${signalR.LogLevel[level]}: ${message}`);
          }
        },
      };
      const connection = new signalR.HubConnectionBuilder().withUrl(spec.hub, options).configureLogging(logger).build();
      const want = Number(spec.want || 1);
      let done;
      const finished = new Promise((resolve) => (done = resolve));
      connection.on("ReceiveMessage", (message) => {
        result.messages.push(message);
        if (result.messages.length >= want) done();
      });
      connection.onclose((e) => {
        result.closed = e ? String(e) : "closed";
        done();
      });
      await connection.start();
      result.started = true;
      await Promise.race([finished, sleep(Number(spec.wait_ms || 10000))]);
      await Promise.race([connection.stop(), sleep(2000)]);
    } catch (e) {
      result.error = String(e);
    }
    return result;
  }

  try {
    if (typeof signalR === "undefined") throw new Error("signalr.js did not load");
    for (const spec of JSON.parse(params.get("cases"))) report.results.push(await runCase(spec));
  } catch (e) {
    report.error = String(e);
  }
  report.pageMs = elapsed();
  document.getElementById("status").textContent = JSON.stringify(report, null, 2);
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      const res = await fetch(`/report?run=${encodeURIComponent(run)}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(report),
      });
      if (res.ok) return;
    } catch (e) {
      // the test's server did not answer; try again a few times
    }
    await sleep(200);
  }
})();
