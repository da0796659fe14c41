// A KS history server for the `signalr` source's backfill tests, as KS documents its REST history
// (../shared/ks-event-streaming.md, "History"): GET /v1.1/sites/{site_id}/entries|incidents with an OData
// `$filter` on utc_date_time (ge/gt/le/lt joined by `and`), `$orderby=utc_date_time asc`, `$top`; the body is
// {"items": [...], "continuation_token": "<escaped JSON>"} and the next page is asked for with that JSON,
// unescaped, in the CLP-Continuation-Token header (or a $continuationToken query parameter). Pages may be empty
// and still carry a token, as KS's partitioned store answers.
//
// `faults` is a list consulted in order, one entry per request, before the normal answer (or a function of the
// request's record): an entry may answer instead ({status, headers, body}), delay the answer ({delayMs}), cut
// the connection ({destroy: true}), or be null to answer normally. Every
// request is recorded in `requests` ({site, hub, filter, top, token, auth, userId, status, at}).
"use strict";
const http = require("node:http");

// Ten minutes ago, in whole seconds: event times near the wall clock, as a live hub's are.
const BASE = Math.floor(Date.now() / 1000) * 1000 - 600_000;

// utc_date_time for `seconds` after BASE, whole seconds with Z as KS writes it.
function utc(seconds) {
  return new Date(BASE + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function parseFilter(text) {
  const bounds = {};
  if (!text) return bounds;
  for (const part of text.split(/\s+and\s+/)) {
    const m = /^\s*utc_date_time\s+(ge|gt|le|lt)\s+(?:DateTime')?([0-9T:\-Z.]+)'?\s*$/.exec(part);
    if (!m) throw new Error(`unsupported filter part '${part}'`);
    bounds[m[1]] = Date.parse(m[2]);
  }
  return bounds;
}

function referenceHistory({ faults = [], emptyEvery = 0, tokenLifetime = Infinity } = {}) {
  const h = { events: new Map(), requests: [], faults, issued: new Map(), tokenSeq: 0 };
  // Adds events (objects with id and utc_date_time) to a site's hub ("entries" or "incidents").
  h.add = (site, hub, ...events) => {
    const key = `${site}/${hub}`;
    if (!h.events.has(key)) h.events.set(key, []);
    h.events.get(key).push(...events);
  };
  // Cosmos-like tokens: JSON objects, so that the body carries them as escaped JSON strings.
  function issue(state) {
    const token = JSON.stringify({ token: `+RID:~${++h.tokenSeq}#RT:1#TRC:${state.offset}`,
                                   range: { min: "", max: "FF" } });
    h.issued.set(token, { ...state, uses: 0 });
    return token;
  }
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    const m = /^\/v1\.1\/sites\/([^/]+)\/(entries|incidents)$/.exec(url.pathname);
    const headerToken = req.headers["clp-continuation-token"];
    const token = headerToken !== undefined ? headerToken : url.searchParams.get("$continuationToken");
    const record = { site: m && decodeURIComponent(m[1]), hub: m && m[2], filter: url.searchParams.get("$filter"),
                     orderby: url.searchParams.get("$orderby"), top: url.searchParams.get("$top"), token,
                     auth: req.headers.authorization || "", userId: url.searchParams.get("user_id"), at: Date.now(),
                     status: 0 };
    h.requests.push(record);
    const answer = (status, body, headers = {}) => {
      record.status = status;
      const text = typeof body === "string" ? body : JSON.stringify(body);
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(text);
    };
    const fault = typeof h.faults === "function" ? h.faults(record) : h.faults.length > 0 ? h.faults.shift() : null;
    if (fault && fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault && fault.status) return answer(fault.status, fault.body ?? "", fault.headers);
    if (fault && fault.destroy) { record.status = -1; return req.socket.destroy(); }
    if (!m) return answer(404, { error: "no such path" });
    let state;
    if (token) {
      state = h.issued.get(token);
      if (!state || state.uses >= tokenLifetime) return answer(400, { error: "invalid continuation token" });
      state.uses++;
    } else {
      let bounds;
      try {
        bounds = parseFilter(url.searchParams.get("$filter"));
      } catch (e) {
        return answer(400, { error: e.message });
      }
      state = { key: `${m[1]}/${m[2]}`, bounds, offset: 0, userId: url.searchParams.get("user_id"), page: 0 };
    }
    const top = Number(url.searchParams.get("$top") || 100);
    const b = state.bounds;
    const all = (h.events.get(state.key) || [])
      .filter((e) => {
        const t = Date.parse(e.utc_date_time);
        return (b.ge === undefined || t >= b.ge) && (b.gt === undefined || t > b.gt) &&
               (b.le === undefined || t <= b.le) && (b.lt === undefined || t < b.lt) &&
               (!state.userId || e.user_id === state.userId);
      })
      .sort((x, y) => Date.parse(x.utc_date_time) - Date.parse(y.utc_date_time));
    const page = state.page + 1;
    // Every emptyEvery-th page is empty but carries a token, as a partitioned store answers.
    const empty = emptyEvery > 0 && page % emptyEvery === 0;
    const items = empty ? [] : all.slice(state.offset, state.offset + top);
    const offset = state.offset + items.length;
    const body = { items };
    if (offset < all.length || empty) body.continuation_token = issue({ ...state, offset, page });
    answer(200, body);
  });
  h.listen = () => new Promise((r) => server.listen(0, "127.0.0.1", () => { h.port = server.address().port; r(); }));
  h.close = () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); });
  h.url = () => `http://127.0.0.1:${h.port}`;
  return h;
}

module.exports = { referenceHistory, utc, parseFilter, BASE };
