// Standalone use, for trying a client or the hubflow source by hand:
//   dotnet run --project tests/dotnet/KsReferenceServer -- --jwks JWKS --roles ROLES [--port N] [--issuer I]
//       [--audience A] [--site S --rate N]
// With --site and --rate it streams that many KS-shaped entries a second to /v1/hub/entries?site_id=S.
using KsReferenceServer;

var opts = new Dictionary<string, string>();
for (int i = 0; i + 1 < args.Length; i += 2)
{
    if (!args[i].StartsWith("--")) throw new ArgumentException($"argument {i + 1} (\"{args[i]}\"): expected --name value");
    opts[args[i][2..]] = args[i + 1];
}
string Need(string name) => opts.TryGetValue(name, out var v) ? v : throw new ArgumentException($"--{name} is required");

await using var server = await KsServer.StartAsync(new KsServerOptions
{
    Port = int.Parse(opts.GetValueOrDefault("port", "0")),
    JwksFile = Need("jwks"),
    RolesFile = Need("roles"),
    Issuer = opts.GetValueOrDefault("issuer", ""),
    Audience = opts.GetValueOrDefault("audience", ""),
});
Console.Error.WriteLine($"KS reference server listening on {server.BaseUrl}");

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();
try
{
    if (opts.TryGetValue("site", out var site) && opts.TryGetValue("rate", out var rate))
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1.0 / double.Parse(rate)));
        for (long n = 1; await timer.WaitForNextTickAsync(stop.Token); n++)
            await server.PublishAsync("entries", site, null, KsEvents.Entry($"entry-{n}", "user-1"));
    }
    else
    {
        await Task.Delay(Timeout.Infinite, stop.Token);
    }
}
catch (OperationCanceledException)
{
}
