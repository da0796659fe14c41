// What a .NET integrator writes instead of hubflow's `signalr` source: the official client connected as the KS
// sample does (AccessTokenProvider, SkipNegotiation, WebSockets, On<string>("ReceiveMessage")), each message
// appended to a file. The .NET peer of bench/cases/ingest, beside bench/ingest/node_consumer.js.
//   KsConsumer URL TOKEN OUT_FILE
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;

if (args.Length != 3)
{
    Console.Error.WriteLine("usage: KsConsumer URL TOKEN OUT_FILE");
    return 2;
}
var (url, token, file) = (args[0], args[1], args[2]);
// The client takes http(s):// URLs and switches to ws(s):// itself.
if (url.StartsWith("ws")) url = "http" + url[2..];

using var output = new StreamWriter(file, append: true, new UTF8Encoding(false), 1 << 16);
var connection = new HubConnectionBuilder()
    .WithUrl(url, o =>
    {
        o.AccessTokenProvider = () => Task.FromResult<string?>(token);
        o.SkipNegotiation = true;
        o.Transports = HttpTransportType.WebSockets;
    })
    .WithAutomaticReconnect()
    .Build();
// The client calls the handlers of one connection one at a time, in order.
connection.On<string>("ReceiveMessage", message => output.WriteLine(message));

var stopped = new TaskCompletionSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
{
    ctx.Cancel = true;
    stopped.TrySetResult();
});
await connection.StartAsync();
await stopped.Task;
await connection.StopAsync();
output.Flush();
return 0;
