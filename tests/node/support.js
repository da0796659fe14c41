// Helpers shared by the Node test suites.
"use strict";
const assert = require("node:assert/strict");
const { spawnSync } = require("node:child_process");

// Polls `predicate` until it holds; fails with `what` after `timeoutMs`. Tests wait on conditions, never on
// fixed sleeps.
async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// A development token from the real `hubflow token` command.
function mintToken(hubflow, secret, sub, { scope = ["user_api.full_access"], ttl = 3600 } = {}) {
  const args = ["token", "--secret", secret, "--sub", sub, `--ttl=${ttl}`];
  for (const s of scope) args.push("--scope", s);
  const r = spawnSync(hubflow, args, { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

module.exports = { waitFor, mintToken };
