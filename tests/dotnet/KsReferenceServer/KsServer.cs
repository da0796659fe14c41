// The KS Event Streaming service as ASP.NET Core itself would serve it: Kestrel on 127.0.0.1, the SignalR hubs
// /v1/hub/entries and /v1/hub/incidents (WebSockets only), tokens checked by the JwtBearer handler against a JWKS
// file, and an authorization policy for the scope and the per-site roles read from hubflow's roles file format.
// It is the yardstick hubflow's signalr_hub is compared with, and a hub for hubflow's signalr source to consume.
using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.IdentityModel.Tokens;

namespace KsReferenceServer;

public sealed class KsServerOptions
{
    public int Port { get; set; }                // 0: the system picks one; read KsServer.Port after the start
    public required string JwksFile { get; set; }
    public string Issuer { get; set; } = "";     // checked when not empty, as hubflow's auth.issuer
    public string Audience { get; set; } = "";   // checked when not empty, as hubflow's auth.audience
    public int LeewaySeconds { get; set; } = 30; // hubflow's auth.leeway_s default
    // SignalR's own defaults: a ping every 15 s; a client silent for 30 s is dropped.
    public double KeepAliveSeconds { get; set; } = 15;
    public double ClientTimeoutSeconds { get; set; } = 30;
    public required string RolesFile { get; set; }
}

public sealed class KsServer : IAsyncDisposable
{
    public const string RequiredScope = "user_api.full_access";
    public static readonly string[] HubPaths = ["/v1/hub/entries", "/v1/hub/incidents"];

    private readonly WebApplication _app;
    private readonly ServerState _state;

    private KsServer(WebApplication app, ServerState state, int port)
    {
        _app = app;
        _state = state;
        Port = port;
    }

    public int Port { get; }
    public string BaseUrl => $"http://127.0.0.1:{Port}";
    // Requests that reached a hub path (upgrades and refusals alike), and the hub connections open now.
    public int HubRequests => _state.HubRequests;
    public int Connections => _state.Connections;
    public IReadOnlyCollection<int> Statuses => _state.Statuses.ToArray();

    public static async Task<KsServer> StartAsync(KsServerOptions options)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // KS_SERVER_LOG=Debug (or another level) shows what ASP.NET Core did with each connection, on stderr.
        if (Enum.TryParse<LogLevel>(Environment.GetEnvironmentVariable("KS_SERVER_LOG"), out var level))
            builder.Logging.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff ").SetMinimumLevel(level);
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, options.Port));
        var state = new ServerState(options.RolesFile);
        builder.Services.AddSingleton(state);

        var keys = new JsonWebKeySet(File.ReadAllText(options.JwksFile)).GetSigningKeys();
        builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
        {
            // Claims under their JWT names (sub, scope), not the WS-Federation URIs.
            o.MapInboundClaims = false;
            o.TokenValidationParameters = new TokenValidationParameters
            {
                IssuerSigningKeys = keys,
                ValidateIssuer = options.Issuer.Length > 0,
                ValidIssuer = options.Issuer,
                ValidateAudience = options.Audience.Length > 0,
                ValidAudience = options.Audience,
                ClockSkew = TimeSpan.FromSeconds(options.LeewaySeconds),
                RequireExpirationTime = true,
                RequireSignedTokens = true,
                ValidAlgorithms = [SecurityAlgorithms.RsaSha256, SecurityAlgorithms.EcdsaSha256],
                NameClaimType = "sub",
            };
            o.Events = new JwtBearerEvents
            {
                // The pattern the ASP.NET Core SignalR documentation gives for browsers, which cannot set headers.
                OnMessageReceived = ctx =>
                {
                    var token = ctx.Request.Query["access_token"];
                    if (!string.IsNullOrEmpty(token) && IsHubPath(ctx.HttpContext.Request.Path)) ctx.Token = token;
                    return Task.CompletedTask;
                },
                // The KS user id is `sub`; a token without it names nobody (hubflow: 401 "no user claim").
                OnTokenValidated = ctx =>
                {
                    if (string.IsNullOrEmpty(ctx.Principal?.FindFirst("sub")?.Value)) ctx.Fail("no user claim");
                    return Task.CompletedTask;
                },
            };
        });
        builder.Services.AddHttpContextAccessor();
        builder.Services.AddSingleton<IAuthorizationHandler, KsHubAccessHandler>();
        builder.Services.AddAuthorizationBuilder().AddPolicy("ks-hub", p =>
            p.RequireAuthenticatedUser().AddRequirements(new KsHubAccessRequirement()));
        // Both hub protocols, as a KS deployment offering MessagePack would; clients pick one in the handshake.
        builder.Services.AddSignalR(o =>
        {
            o.KeepAliveInterval = TimeSpan.FromSeconds(options.KeepAliveSeconds);
            o.ClientTimeoutInterval = TimeSpan.FromSeconds(options.ClientTimeoutSeconds);
        }).AddMessagePackProtocol();

        var app = builder.Build();
        // Counted before anything can refuse, so a test sees every attempt a client made.
        app.Use(async (ctx, next) =>
        {
            if (!IsHubPath(ctx.Request.Path))
            {
                await next();
                return;
            }
            Interlocked.Increment(ref state.HubRequests);
            ctx.Response.OnStarting(() =>
            {
                state.Statuses.Enqueue(ctx.Response.StatusCode);
                return Task.CompletedTask;
            });
            // KS's 400 for a missing site_id (inferred), answered before the token is looked at, as hubflow does.
            var query = ctx.Request.Query;
            if (string.IsNullOrEmpty(query["site_id"]) || (query.ContainsKey("user_id") && string.IsNullOrEmpty(query["user_id"])))
            {
                ctx.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }
            await next();
        });
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapHub<EntriesHub>("/v1/hub/entries", o => o.Transports = HttpTransportType.WebSockets)
            .RequireAuthorization("ks-hub");
        app.MapHub<IncidentsHub>("/v1/hub/incidents", o => o.Transports = HttpTransportType.WebSockets)
            .RequireAuthorization("ks-hub");
        await app.StartAsync();

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new KsServer(app, state, new Uri(address).Port);
    }

    public static bool IsHubPath(PathString path) => HubPaths.Any(h => path.Equals(h, StringComparison.Ordinal));

    // Sends `json` as ReceiveMessage to every connection of the hub and site, and to the connections of the event's
    // user_id, as hubflow's signalr_hub does. `hub` is "entries" or "incidents".
    public Task PublishAsync(string hub, string siteId, string? userId, string json)
    {
        IHubClients clients = hub switch
        {
            "entries" => _app.Services.GetRequiredService<IHubContext<EntriesHub>>().Clients,
            "incidents" => _app.Services.GetRequiredService<IHubContext<IncidentsHub>>().Clients,
            _ => throw new ArgumentException($"hub: \"{hub}\" is neither entries nor incidents", nameof(hub)),
        };
        var groups = new List<string> { GroupKey(siteId, null) };
        if (!string.IsNullOrEmpty(userId)) groups.Add(GroupKey(siteId, userId));
        return clients.Groups(groups).SendAsync("ReceiveMessage", json);
    }

    internal static string GroupKey(string siteId, string? userId) => $"{siteId}\n{userId ?? ""}";

    // Stops as when the process ends: the listener closes and open connections are reset at once. A plain host stop
    // first has SignalR abort its connections while Kestrel still accepts new ones, so a client that reconnects
    // within milliseconds (hubflow's source does) lands on a server that is going away and hangs there until
    // HostOptions.ShutdownTimeout (30 s).
    public async ValueTask DisposeAsync()
    {
        await _app.Services.GetRequiredService<IServer>().StopAsync(new CancellationToken(canceled: true));
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

public sealed class ServerState(string rolesFile)
{
    public int HubRequests;
    public int Connections;
    public readonly ConcurrentQueue<int> Statuses = new();
    public RolesFile Roles { get; } = new(rolesFile);
}

public abstract class KsHub(ServerState state) : Hub
{
    public override async Task OnConnectedAsync()
    {
        var query = Context.GetHttpContext()!.Request.Query;
        string? user = query.ContainsKey("user_id") ? query["user_id"].ToString() : null;
        await Groups.AddToGroupAsync(Context.ConnectionId, KsServer.GroupKey(query["site_id"]!, user));
        Interlocked.Increment(ref state.Connections);
    }

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        Interlocked.Decrement(ref state.Connections);
        return Task.CompletedTask;
    }
}

public sealed class EntriesHub(ServerState state) : KsHub(state);

public sealed class IncidentsHub(ServerState state) : KsHub(state);

// hubflow's roles file: {"SITE": {"USER": "site_admin", ...}}, read again whenever it changes.
public sealed class RolesFile(string path)
{
    private readonly object _lock = new();
    private DateTime _stamp;
    private long _size = -1;
    private Dictionary<string, Dictionary<string, string>> _table = new();

    public string? Role(string siteId, string userId)
    {
        lock (_lock)
        {
            var info = new FileInfo(path);
            if (info.Exists && (info.LastWriteTimeUtc != _stamp || info.Length != _size))
            {
                _table = JsonSerializer.Deserialize<Dictionary<string, Dictionary<string, string>>>(File.ReadAllText(path))
                         ?? throw new InvalidDataException($"{path}: not a JSON object");
                _stamp = info.LastWriteTimeUtc;
                _size = info.Length;
            }
            return _table.TryGetValue(siteId, out var users) && users.TryGetValue(userId, out var role) ? role : null;
        }
    }
}

public sealed class KsHubAccessRequirement : IAuthorizationRequirement;

// The KS permission table: scope user_api.full_access (a JSON array of scopes, or one space-separated string);
// site_admin and site_super_user may open either hub for the whole site or any user; site_user only with user_id
// equal to its own id; any other role, or none, is refused.
public sealed class KsHubAccessHandler(IHttpContextAccessor http, ServerState state)
    : AuthorizationHandler<KsHubAccessRequirement>
{
    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, KsHubAccessRequirement requirement)
    {
        var scopes = context.User.FindAll("scope").SelectMany(c => c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        var sub = context.User.FindFirst("sub")?.Value;
        var query = http.HttpContext?.Request.Query;
        if (query is null || sub is null || !scopes.Contains(KsServer.RequiredScope)) return Task.CompletedTask;
        string site = query["site_id"].ToString();
        string? user = query.ContainsKey("user_id") ? query["user_id"].ToString() : null;
        var role = state.Roles.Role(site, sub);
        if (role is "site_admin" or "site_super_user" || (role == "site_user" && user == sub))
            context.Succeed(requirement);
        return Task.CompletedTask;
    }
}
