// hubflow's `signalr` source (a real `hubflow run`, signalr -> file) against ASP.NET Core SignalR itself: the
// KsReferenceServer streams KS-shaped events; it is stopped and started again on the same port; it refuses tokens
// with 401 and 403 from its own JwtBearer handler and authorization policy.
using System.Text.Json.Nodes;
using KsReferenceServer;
using Xunit;

namespace HubflowPeers.Tests;

public sealed class SourceTests : IAsyncLifetime
{
    private const string Site = "site-a";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private readonly Scratch _scratch = new("hubflow-dotnet-source-");
    private readonly TokenFactory _tokens = new();
    private readonly List<HubflowProcess> _processes = [];
    private readonly List<KsServer> _servers = [];
    private string _jwks = "", _roles = "";

    public Task InitializeAsync()
    {
        _jwks = _scratch.Write("jwks.json", _tokens.Jwks());
        _roles = _scratch.Write("roles.json", Json.Roles((Site, "admin", "site_admin"), (Site, "plain", "site_user")));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _processes) await p.DisposeAsync();
        foreach (var s in _servers) await s.DisposeAsync();
        _scratch.Dispose();
    }

    private async Task<KsServer> StartServerAsync(int port = 0, double keepAliveSeconds = 15, double clientTimeoutSeconds = 30)
    {
        var server = await KsServer.StartAsync(new KsServerOptions
        {
            Port = port, JwksFile = _jwks, RolesFile = _roles, Issuer = TokenFactory.Issuer, Audience = TokenFactory.Audience,
            KeepAliveSeconds = keepAliveSeconds, ClientTimeoutSeconds = clientTimeoutSeconds,
        });
        _servers.Add(server);
        return server;
    }

    // signalr -> file, one file per site and kind (both from the source's metadata), fast reconnects.
    private HubflowProcess Consumer(string name, JsonArray urls, JsonObject auth, JsonObject? reconnect = null,
                                    string tokenIn = "header", JsonObject? extra = null)
    {
        var consumer = HubflowProcess.Run(_scratch, name, new JsonObject
        {
            ["data_dir"] = _scratch.Path($"{name}-state"),
            ["sources"] = new JsonObject
            {
                ["ks"] = Merge(new JsonObject
                {
                    ["type"] = "signalr", ["urls"] = urls, ["auth"] = auth, ["token_in"] = tokenIn,
                    ["reconnect"] = reconnect ?? new JsonObject { ["initial_ms"] = 50, ["max_ms"] = 300 },
                }, extra),
            },
            ["sinks"] = new JsonObject
            {
                ["out"] = new JsonObject
                {
                    ["type"] = "file", ["inputs"] = new JsonArray("ks"), ["path"] = _scratch.Path($"{name}-out/{{site_id}}/{{kind}}.jsonl"),
                },
            },
        });
        _processes.Add(consumer);
        return consumer;
    }

    private static JsonObject Merge(JsonObject into, JsonObject? extra)
    {
        foreach (var (k, v) in extra ?? []) into[k] = v?.DeepClone();
        return into;
    }

    private string[] Lines(string name, string kind)
    {
        var path = _scratch.Path($"{name}-out/{Site}/{kind}.jsonl");
        if (!File.Exists(path)) return [];
        // Only whole lines: the sink may be half way through writing the last one.
        var parts = File.ReadAllText(path).Split('\n');
        return parts[..^1].Where(l => l.Length > 0).ToArray();
    }

    [Fact]
    public async Task EventsArriveFromBothHubs_AndTheSourceReconnectsWhenTheServerComesBack()
    {
        var server = await StartServerAsync();
        int port = server.Port;
        string token = _tokens.Token("admin");
        var c = Consumer("stream", new JsonArray(
                $"ws://127.0.0.1:{port}/v1/hub/entries?site_id={Site}", $"ws://127.0.0.1:{port}/v1/hub/incidents?site_id={Site}"),
            new JsonObject { ["token"] = token });
        await Wait.UntilAsync(() => server.Connections == 2, Patience, "both hubs connected");

        var sent = new List<string>();
        for (int i = 1; i <= 200; i++)
        {
            var entry = KsEvents.Entry($"e{i}", i % 2 == 0 ? "plain" : null);
            sent.Add(entry);
            await server.PublishAsync("entries", Site, i % 2 == 0 ? "plain" : null, entry);
        }
        var incident = KsEvents.Incident("i1");
        await server.PublishAsync("incidents", Site, null, incident);
        await Wait.UntilAsync(() => Lines("stream", "entry").Length >= 200 && Lines("stream", "incident").Length >= 1,
            Patience, "200 entries and an incident");
        // The payload is the string argument as sent, byte for byte, in order; each event once.
        Assert.Equal(sent, Lines("stream", "entry"));
        Assert.Equal([incident], Lines("stream", "incident"));

        // ASP.NET Core's graceful shutdown ends both connections; the source retries until the server is back.
        await server.DisposeAsync();
        _servers.Remove(server);
        await c.WaitForLogAsync("cannot connect to", Patience, "a failed reconnect while the server is down");
        var again = await StartServerAsync(port);
        await Wait.UntilAsync(() => again.Connections == 2, Patience, "both hubs reconnected");
        await c.WaitForLogAsync(@"reconnected to ws://127\.0\.0\.1:\d+/v1/hub/entries\?site_id=site-a; disconnected from .* to .* \(\d+\.\d+ s, cause: ",
            Patience, "the gap logged");
        var after = KsEvents.Entry("after-restart", null);
        await again.PublishAsync("entries", Site, null, after);
        await Wait.UntilAsync(() => Lines("stream", "entry").Length == 201, Patience, "the event after the restart");
        Assert.Equal(after, Lines("stream", "entry")[^1]);

        Assert.Equal(0, await c.StopAsync());
        c.AssertLog(@"disconnects=2 ");
        Assert.DoesNotContain(token[^20..], c.Log);
    }

    // ASP.NET Core drops a client silent for ClientTimeoutInterval and pings every KeepAliveInterval; the source
    // pings every ping_interval_s and gives up on a hub silent for server_timeout_s. Both at a few seconds here:
    // an idle connection must outlive both timeouts several times over.
    [Fact]
    public async Task AnIdleConnectionOutlivesBothSidesTimeouts()
    {
        var server = await StartServerAsync(keepAliveSeconds: 1, clientTimeoutSeconds: 2.5);
        var c = Consumer("idle", new JsonArray($"ws://127.0.0.1:{server.Port}/v1/hub/entries?site_id={Site}"),
            new JsonObject { ["token"] = _tokens.Token("admin") },
            extra: new JsonObject { ["ping_interval_s"] = 1, ["server_timeout_s"] = 3 });
        await Wait.UntilAsync(() => server.Connections == 1, Patience, "the connection");
        var quietUntil = DateTime.UtcNow + TimeSpan.FromSeconds(8);
        await Wait.UntilAsync(() => DateTime.UtcNow > quietUntil || server.Connections != 1 || c.Log.Contains("disconnected from"),
            TimeSpan.FromSeconds(10), "eight quiet seconds");
        Assert.Equal(1, server.Connections);
        Assert.Equal(1, server.HubRequests);
        await server.PublishAsync("entries", Site, null, KsEvents.Entry("after-quiet", null));
        await Wait.UntilAsync(() => Lines("idle", "entry").Length == 1, Patience, "the event after the quiet");
        Assert.Equal(0, await c.StopAsync());
        c.AssertLog("disconnected from", present: false);
        c.AssertLog("disconnects=0 ");
    }

    [Fact]
    public async Task A401DropsTheTokenAndTheTokenFileIsReadAgainBeforeTheNextTry()
    {
        var server = await StartServerAsync();
        var expired = TokenFactory.Claims("admin");
        expired["exp"] = TokenFactory.Now - 3600;
        var tokenFile = _scratch.Write("token", _tokens.Sign(TokenFactory.Header(), expired));
        var c = Consumer("expired", new JsonArray($"ws://127.0.0.1:{server.Port}/v1/hub/entries?site_id={Site}"),
            new JsonObject { ["token_file"] = tokenFile });
        await c.WaitForLogAsync("refused the token: HTTP 401", Patience, "the 401 to be logged");
        Assert.Contains(401, server.Statuses);
        Assert.Equal(0, server.Connections);

        var good = _tokens.Token("admin");
        _scratch.Write("token", good);
        await Wait.UntilAsync(() => server.Connections == 1, Patience, "the connect with the new token");
        await server.PublishAsync("entries", Site, null, KsEvents.Entry("after-401", null));
        await Wait.UntilAsync(() => Lines("expired", "entry").Length == 1, Patience, "the event");
        Assert.Equal(0, await c.StopAsync());
        Assert.DoesNotContain(good[^20..], c.Log);
    }

    [Fact]
    public async Task A403IsAConfigurationError_RetriedOnTheLongBackoffNotInALoop()
    {
        var server = await StartServerAsync();
        // A token without the scope (sent in the query, as browsers do) and a site_user asking for the whole site:
        // both 403 from the authorization policy.
        var noScope = TokenFactory.Claims("admin");
        noScope.Remove("scope");
        var noScopeToken = _tokens.Sign(TokenFactory.Header(), noScope);
        var c = Consumer("forbidden", new JsonArray($"ws://127.0.0.1:{server.Port}/v1/hub/entries?site_id={Site}"),
            new JsonObject { ["token"] = noScopeToken },
            new JsonObject { ["initial_ms"] = 10, ["max_ms"] = 50, ["config_error_ms"] = 1500 }, tokenIn: "query");
        var user = Consumer("site-user", new JsonArray($"ws://127.0.0.1:{server.Port}/v1/hub/incidents?site_id={Site}"),
            new JsonObject { ["token"] = _tokens.Token("plain") },
            new JsonObject { ["initial_ms"] = 10, ["max_ms"] = 50, ["config_error_ms"] = 1500 });
        try
        {
            await Wait.UntilAsync(() => server.HubRequests >= 4, Patience, "two attempts of each");
        }
        catch (TimeoutException e)
        {
            throw new Xunit.Sdk.XunitException($"{e.Message}; {server.HubRequests} requests, statuses " +
                                               $"{string.Join(",", server.Statuses)}\n{c.Log}\n{user.Log}");
        }
        int atStart = server.HubRequests;
        var t0 = DateTime.UtcNow;
        await Wait.UntilAsync(() => DateTime.UtcNow - t0 > TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(3), "two seconds");
        // 10-50 ms backoff would make dozens of attempts in 2 s; 1.5 s between them allows one or two each.
        Assert.InRange(server.HubRequests - atStart, 0, 4);
        Assert.All(server.Statuses, s => Assert.Equal(403, s));
        foreach (var h in new[] { c, user })
        {
            Assert.Equal(0, await h.StopAsync());
            h.AssertLog(@"error \[ks\] cannot connect to .*configuration error: the hub answered HTTP 403");
        }
        Assert.DoesNotContain(noScopeToken[^20..], c.Log);
    }
}
