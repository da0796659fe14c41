// What an integration engineer would write instead of hubflow's `signalr` source: the official
// @microsoft/signalr client appending each message to a file. Used by bench/cases/ingest.
//   node node_consumer.js URL TOKEN OUT_FILE
"use strict";
const fs = require("node:fs");
const signalR = require("@microsoft/signalr");

const [given, token, file] = process.argv.slice(2);
// The official client takes http(s):// URLs and switches to ws(s):// itself.
const url = given.replace(/^ws/, "http");
const out = fs.createWriteStream(file, { flags: "a" });
const connection = new signalR.HubConnectionBuilder()
  .withUrl(url, { accessTokenFactory: () => token, skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets })
  .withAutomaticReconnect()
  .configureLogging(signalR.LogLevel.Warning)
  .build();
connection.on("ReceiveMessage", (message) => out.write(message + "\n"));
process.on("SIGTERM", async () => {
  await connection.stop();
  out.end(() => process.exit(0));
});
connection.start().catch((e) => {
  console.error(e);
  process.exit(1);
});
