// The official .NET SignalR client against hubflow's signalr_hub, connected exactly as the KS documentation's C#
// sample does: AccessTokenProvider, SkipNegotiation, WebSockets only, On<string>("ReceiveMessage").
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Xunit;

namespace HubflowPeers.Tests;

public sealed class HubClientTests : IAsyncLifetime
{
    private const string SiteA = "site-a";
    private const string SiteB = "site-b";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private readonly Scratch _scratch = new("hubflow-dotnet-client-");
    private readonly TokenFactory _tokens = new();
    private readonly List<HubflowProcess> _processes = [];
    private string _rolesFile = "";
    private string _jwksFile = "";

    public Task InitializeAsync()
    {
        _jwksFile = _scratch.Write("jwks.json", _tokens.Jwks());
        _rolesFile = _scratch.Write("roles.json", Json.Roles(
            (SiteA, "admin", "site_admin"), (SiteA, "super", "site_super_user"), (SiteA, "guest", "site_guest"),
            (SiteB, "admin", "site_admin")));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _processes) await p.DisposeAsync();
        _scratch.Dispose();
    }

    // A hub fed by the generator (entries and incidents of two sites, three users each) on `port` (0: any).
    private HubflowProcess StartHub(string name, int port = 0)
    {
        var pipeline = new JsonObject
        {
            ["data_dir"] = _scratch.Path($"{name}-state"),
            ["sources"] = new JsonObject
            {
                ["ks"] = new JsonObject
                {
                    ["type"] = "generator", ["rate"] = 400, ["sites"] = new JsonArray(SiteA, SiteB),
                    ["users_per_site"] = 3, ["incident_ratio"] = 0.3, ["seed"] = 11,
                },
            },
            ["sinks"] = new JsonObject
            {
                ["hub"] = new JsonObject
                {
                    ["type"] = "signalr_hub", ["inputs"] = new JsonArray("ks"), ["listen"] = $"127.0.0.1:{port}",
                    ["auth"] = new JsonObject
                    {
                        ["jwks_file"] = _jwksFile, ["issuer"] = TokenFactory.Issuer, ["audience"] = TokenFactory.Audience,
                    },
                    ["roles"] = new JsonObject { ["file"] = _rolesFile },
                    ["ping_interval_s"] = 1,
                },
            },
        };
        var hub = HubflowProcess.Run(_scratch, name, pipeline);
        _processes.Add(hub);
        return hub;
    }

    // The seed's C# sample, word for word where it can be, plus the reconnect option where a test asks for it.
    private static (HubConnection connection, ConcurrentQueue<JsonObject> messages) Connect(
        string url, string? token, bool reconnect = false)
    {
        var builder = new HubConnectionBuilder().WithUrl(url, options =>
        {
            if (token is not null) options.AccessTokenProvider = () => Task.FromResult<string?>(token);
            options.SkipNegotiation = true;
            options.Transports = HttpTransportType.WebSockets;
        });
        if (reconnect) builder.WithAutomaticReconnect();
        var connection = builder.Build();
        var messages = new ConcurrentQueue<JsonObject>();
        connection.On<string>("ReceiveMessage", message => messages.Enqueue(Json.Parse(message)));
        return (connection, messages);
    }

    // The .NET client passes on ClientWebSocket's exception for a refused upgrade; its text is the only place the
    // status code appears.
    private static string Refused(int status) => $"The server returned status code '{status}' when status code '101' was expected.";

    [Fact]
    public async Task EntriesAndIncidentsOfASiteReachASiteAdminAndOnlyThatSites()
    {
        var hub = StartHub("hub");
        var baseUrl = $"http://127.0.0.1:{await hub.ListeningPortAsync()}";
        var token = _tokens.Token("admin");
        var a = Connect($"{baseUrl}/v1/hub/entries?site_id={SiteA}", token);
        var b = Connect($"{baseUrl}/v1/hub/entries?site_id={SiteB}", token);
        var inc = Connect($"{baseUrl}/v1/hub/incidents?site_id={SiteA}", token);
        await Task.WhenAll(a.connection.StartAsync(), b.connection.StartAsync(), inc.connection.StartAsync());
        await Wait.UntilAsync(() => a.messages.Count >= 30 && b.messages.Count >= 30 && inc.messages.Count >= 10,
            Patience, "events on every hub");
        await Task.WhenAll(a.connection.StopAsync(), b.connection.StopAsync(), inc.connection.StopAsync());

        foreach (var e in a.messages.Concat(b.messages))
            Assert.True(e.ContainsKey("event_category") && !e.ContainsKey("type"), $"an entry: {e}");
        foreach (var e in inc.messages)
            Assert.True(e.ContainsKey("type") && !e.ContainsKey("event_category"), $"an incident: {e}");
        var locksOfA = a.messages.Select(e => (string?)e["lock_id"]).ToHashSet();
        Assert.DoesNotContain(b.messages, e => locksOfA.Contains((string?)e["lock_id"]));
        var idsOfA = a.messages.Select(e => (string?)e["id"]).ToHashSet();
        Assert.DoesNotContain(b.messages, e => idsOfA.Contains((string?)e["id"]));
    }

    [Fact]
    public async Task ASiteUserReceivesOnlyTheirOwnEntriesAndIncidents_The403sAsTheClientReportsThem()
    {
        var hub = StartHub("hub");
        int port = await hub.ListeningPortAsync();
        var baseUrl = $"http://127.0.0.1:{port}";
        // Learn a real user id of site A from the super user's stream, then make that user a site_user.
        var super = Connect($"{baseUrl}/v1/hub/entries?site_id={SiteA}", _tokens.Token("super"));
        await super.connection.StartAsync();
        await Wait.UntilAsync(() => super.messages.Select(e => (string?)e["user_id"]).Where(u => u is not null).Distinct().Count() >= 2,
            Patience, "entries of two users");
        await super.connection.StopAsync();
        var users = super.messages.Select(e => (string?)e["user_id"]).Where(u => u is not null).Distinct().ToList();
        string me = users[0]!, other = users[1]!;
        _scratch.Write("roles.json", Json.Roles(
            (SiteA, "admin", "site_admin"), (SiteA, me, "site_user"), (SiteB, "admin", "site_admin")));
        var myToken = _tokens.Token(me);
        await Wait.UntilAsync(async () => await Net.UpgradeStatusAsync(port,
                $"/v1/hub/entries?site_id={SiteA}&user_id={me}", $"Bearer {myToken}") == 101,
            TimeSpan.FromSeconds(10), "the roles file to be reloaded");

        var entries = Connect($"{baseUrl}/v1/hub/entries?site_id={SiteA}&user_id={me}", myToken);
        var incidents = Connect($"{baseUrl}/v1/hub/incidents?site_id={SiteA}&user_id={me}", myToken);
        await Task.WhenAll(entries.connection.StartAsync(), incidents.connection.StartAsync());
        await Wait.UntilAsync(() => entries.messages.Count >= 5, Patience, "the user's own entries");
        await Task.WhenAll(entries.connection.StopAsync(), incidents.connection.StopAsync());
        Assert.All(entries.messages, e => Assert.Equal(me, (string?)e["user_id"]));
        Assert.All(entries.messages, e => Assert.True(e.ContainsKey("event_category")));
        // Incidents name a lock, not a user: a user's incidents hub is allowed but carries what the hub routes to it.
        Assert.All(incidents.messages, e => Assert.True(e.ContainsKey("type")));

        // What the .NET client reports for a refused upgrade: ClientWebSocket's exception naming the status code.
        foreach (var url in new[]
                 {
                     $"{baseUrl}/v1/hub/entries?site_id={SiteA}", $"{baseUrl}/v1/hub/incidents?site_id={SiteA}",
                     $"{baseUrl}/v1/hub/entries?site_id={SiteA}&user_id={other}",
                     $"{baseUrl}/v1/hub/entries?site_id={SiteB}&user_id={me}",
                 })
        {
            var refused = Connect(url, myToken);
            var e = await Assert.ThrowsAsync<WebSocketException>(() => refused.connection.StartAsync());
            Assert.Equal(Refused(403), e.Message);
            Assert.Equal(HubConnectionState.Disconnected, refused.connection.State);
        }
    }

    [Fact]
    public async Task TheTokenInTheQueryAsBrowsersSendIt_AndThe401sAsTheClientReportsThem()
    {
        var hub = StartHub("hub");
        var baseUrl = $"http://127.0.0.1:{await hub.ListeningPortAsync()}";
        var hubUrl = $"{baseUrl}/v1/hub/incidents?site_id={SiteA}";
        var inQuery = Connect($"{hubUrl}&access_token={Uri.EscapeDataString(_tokens.Token("admin"))}", token: null);
        await inQuery.connection.StartAsync();
        await Wait.UntilAsync(() => inQuery.messages.Count >= 5, Patience, "incidents with the token in the query");
        await inQuery.connection.StopAsync();

        var expired = TokenFactory.Claims("admin");
        expired["exp"] = TokenFactory.Now - 120;
        var badKey = _tokens.Sign(TokenFactory.Header(), TokenFactory.Claims("admin"), _tokens.OtherKey);
        foreach (var (what, token) in new (string, string?)[]
                 {
                     ("no token", null), ("expired", _tokens.Sign(TokenFactory.Header(), expired)),
                     ("bad signature", badKey), ("expired, in the query", null),
                 })
        {
            var url = what == "expired, in the query"
                ? $"{hubUrl}&access_token={Uri.EscapeDataString(_tokens.Sign(TokenFactory.Header(), expired))}"
                : hubUrl;
            var refused = Connect(url, token);
            var e = await Assert.ThrowsAsync<WebSocketException>(() => refused.connection.StartAsync());
            Assert.True(e.Message == Refused(401), $"{what}: {e.Message}");
        }
        // A role that grants nothing and a token without the scope: 403.
        var noScope = TokenFactory.Claims("admin");
        noScope.Remove("scope");
        foreach (var token in new[] { _tokens.Token("guest"), _tokens.Sign(TokenFactory.Header(), noScope) })
        {
            var refused = Connect(hubUrl, token);
            var e = await Assert.ThrowsAsync<WebSocketException>(() => refused.connection.StartAsync());
            Assert.Equal(Refused(403), e.Message);
        }
    }

    [Fact]
    public async Task WithAutomaticReconnectTheClientComesBackAfterTheHubRestarts_ThenStopsCleanly()
    {
        int port = Net.FreePort();
        var hub = StartHub("hub1", port);
        await hub.ListeningPortAsync();
        var c = Connect($"http://127.0.0.1:{port}/v1/hub/entries?site_id={SiteA}", _tokens.Token("admin"), reconnect: true);
        bool reconnecting = false, reconnected = false, closed = false;
        Exception? closedCause = null;
        c.connection.Reconnecting += _ => { reconnecting = true; return Task.CompletedTask; };
        c.connection.Reconnected += _ => { reconnected = true; return Task.CompletedTask; };
        c.connection.Closed += e => { closedCause = e; closed = true; return Task.CompletedTask; };
        await c.connection.StartAsync();
        await Wait.UntilAsync(() => c.messages.Count >= 10, Patience, "events from the first hub");

        // SIGTERM: the hub sends every client a Close with allowReconnect, which starts the automatic reconnect.
        Assert.Equal(0, await hub.StopAsync());
        await Wait.UntilAsync(() => reconnecting, TimeSpan.FromSeconds(10), "the Reconnecting event");
        Assert.Equal(HubConnectionState.Reconnecting, c.connection.State);
        Assert.False(closed, $"the client gave up: {closedCause}");

        var hub2 = StartHub("hub2", port);
        await hub2.ListeningPortAsync();
        // The client's default delays are 0, 2, 10 and 30 s: the hub is back well within them.
        await Wait.UntilAsync(() => reconnected, TimeSpan.FromSeconds(35), "the Reconnected event");
        int before = c.messages.Count;
        await Wait.UntilAsync(() => c.messages.Count >= before + 10, Patience, "events from the restarted hub");

        await c.connection.StopAsync();
        await Wait.UntilAsync(() => closed, TimeSpan.FromSeconds(5), "the Closed event after StopAsync");
        Assert.Null(closedCause);
        Assert.Equal(HubConnectionState.Disconnected, c.connection.State);
        Assert.Equal(0, await hub2.StopAsync());
    }

    // The same client code against ASP.NET Core itself (the reference server): what the client sees there is
    // what it sees from hubflow, so the reference server is a fair stand-in for KS in the other suites.
    [Fact]
    public async Task TheSameClientCodeAgainstAspNetCoreGetsTheSameEventsAndRefusals()
    {
        await using var server = await KsReferenceServer.KsServer.StartAsync(new KsReferenceServer.KsServerOptions
        {
            JwksFile = _jwksFile, RolesFile = _rolesFile, Issuer = TokenFactory.Issuer, Audience = TokenFactory.Audience,
        });
        var site = Connect($"{server.BaseUrl}/v1/hub/entries?site_id={SiteA}", _tokens.Token("admin"));
        var user = Connect($"{server.BaseUrl}/v1/hub/incidents?site_id={SiteA}&user_id=admin", _tokens.Token("admin"));
        await Task.WhenAll(site.connection.StartAsync(), user.connection.StartAsync());
        var entry = KsReferenceServer.KsEvents.Entry("e1", "admin");
        var incident = KsReferenceServer.KsEvents.Incident("i1");
        await server.PublishAsync("entries", SiteA, "admin", entry);
        await server.PublishAsync("incidents", SiteA, "admin", incident);
        await Wait.UntilAsync(() => site.messages.Count == 1 && user.messages.Count == 1, Patience, "both events");
        Assert.Equal(entry, site.messages.Single().ToJsonString());
        Assert.Equal(incident, user.messages.Single().ToJsonString());
        await Task.WhenAll(site.connection.StopAsync(), user.connection.StopAsync());

        var expired = TokenFactory.Claims("admin");
        expired["nbf"] = TokenFactory.Now - 7200;
        expired["exp"] = TokenFactory.Now - 3600;
        foreach (var (token, status) in new[] { (_tokens.Sign(TokenFactory.Header(), expired), 401), (_tokens.Token("guest"), 403) })
        {
            var refused = Connect($"{server.BaseUrl}/v1/hub/entries?site_id={SiteA}", token);
            var e = await Assert.ThrowsAsync<WebSocketException>(() => refused.connection.StartAsync());
            Assert.Equal(Refused(status), e.Message);
        }
    }
}
