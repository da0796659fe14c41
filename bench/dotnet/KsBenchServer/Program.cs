// ASP.NET Core as the peer of hubflow's signalr_hub in bench/cases/fanout and bench/cases/connections.
//
// The hubs (/v1/hub/entries, /v1/hub/incidents, WebSockets only), the authorization handler (scope and per-site
// roles from hubflow's roles file) and the groups come from tests/dotnet's KsReferenceServer, so the bench
// measures the server the tests hold hubflow to. What differs is what a benchmark needs: the bench's HS256 key
// (the hubflow side of the cases uses auth.hs256_secret), no per-request bookkeeping for tests, and a replay of
// the generator's events.
//
//   KsBenchServer --secret S --roles FILE [--port 0] [--replay FILE --site S --rate R]
//
// Prints "listening on PORT" on stdout once Kestrel listens; stops on SIGTERM.
// Replay: the lines of FILE (JSON Lines, KS entries made by hubflow's generator), in order, sent as
// ReceiveMessage to every connection of site S on /v1/hub/entries. The schedule is the generator's, so both
// servers publish event i at the same moment after their start: batches of floor(R/100) events (1..512), a batch
// leaving when its last event is due at t0 + i/R; a late batch leaves at once. R = 0: as fast as the sends
// complete. At the end of FILE the replay starts again from its first line.
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using KsReferenceServer;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.IdentityModel.Tokens;

var opts = new Dictionary<string, string>();
for (int i = 0; i < args.Length; i += 2)
{
    if (!args[i].StartsWith("--") || i + 1 >= args.Length)
        throw new ArgumentException($"argument {i + 1} (\"{args[i]}\"): expected --name value");
    opts[args[i][2..]] = args[i + 1];
}
string Need(string name) => opts.TryGetValue(name, out var v) ? v : throw new ArgumentException($"--{name} is required");

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, int.Parse(opts.GetValueOrDefault("port", "0"))));
builder.Services.AddSingleton(new ServerState(Need("roles")));
builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
{
    o.MapInboundClaims = false;
    o.TokenValidationParameters = new TokenValidationParameters
    {
        IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(Need("secret"))),
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
        ValidateIssuer = false,
        ValidateAudience = false,
        ClockSkew = TimeSpan.FromSeconds(30),
        RequireExpirationTime = true,
        NameClaimType = "sub",
    };
    o.Events = new JwtBearerEvents
    {
        OnMessageReceived = ctx =>
        {
            var token = ctx.Request.Query["access_token"];
            if (!string.IsNullOrEmpty(token)) ctx.Token = token;
            return Task.CompletedTask;
        },
    };
});
builder.Services.AddHttpContextAccessor();
builder.Services.AddSingleton<IAuthorizationHandler, KsHubAccessHandler>();
builder.Services.AddAuthorizationBuilder().AddPolicy("ks-hub", p =>
    p.RequireAuthenticatedUser().AddRequirements(new KsHubAccessRequirement()));
builder.Services.AddSignalR();

var app = builder.Build();
app.UseAuthentication();
app.UseAuthorization();
app.MapHub<EntriesHub>("/v1/hub/entries", o => o.Transports = HttpTransportType.WebSockets).RequireAuthorization("ks-hub");
app.MapHub<IncidentsHub>("/v1/hub/incidents", o => o.Transports = HttpTransportType.WebSockets).RequireAuthorization("ks-hub");

using var stop = new CancellationTokenSource();
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
{
    ctx.Cancel = true;
    stop.Cancel();
});
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx =>
{
    ctx.Cancel = true;
    stop.Cancel();
});

await app.StartAsync();
var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
Console.WriteLine($"listening on {new Uri(address).Port}");
Console.Out.Flush();

try
{
    if (opts.TryGetValue("replay", out var replay))
        await Replay(app.Services.GetRequiredService<IHubContext<EntriesHub>>(), replay, Need("site"),
                     double.Parse(Need("rate"), System.Globalization.CultureInfo.InvariantCulture), stop.Token);
    else
        await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException)
{
}
await app.Services.GetRequiredService<IServer>().StopAsync(new CancellationToken(canceled: true));
await app.StopAsync();
return 0;

static async Task Replay(IHubContext<EntriesHub> hub, string file, string site, double rate, CancellationToken stop)
{
    // The group KsHub.OnConnectedAsync puts a connection on /v1/hub/entries?site_id=S in (KsServer.GroupKey).
    var group = hub.Clients.Group($"{site}\n");
    int batch = rate <= 0 ? 512 : (int)Math.Clamp(Math.Floor(rate / 100.0), 1, 512);
    using var reader = new StreamReader(file, Encoding.UTF8, false, 1 << 16);
    var t0 = Stopwatch.GetTimestamp();
    long made = 0;
    while (!stop.IsCancellationRequested)
    {
        if (rate > 0)
        {
            var due = TimeSpan.FromSeconds((made + batch - 1) / rate) - Stopwatch.GetElapsedTime(t0);
            if (due > TimeSpan.Zero) await Task.Delay(due, stop);
        }
        for (int k = 0; k < batch; k++)
        {
            var line = reader.ReadLine();
            if (line is null)
            {
                reader.BaseStream.Seek(0, SeekOrigin.Begin);
                reader.DiscardBufferedData();
                line = reader.ReadLine() ?? throw new InvalidDataException($"{file}: no lines to replay");
            }
            await group.SendAsync("ReceiveMessage", line, stop);
        }
        made += batch;
    }
}
