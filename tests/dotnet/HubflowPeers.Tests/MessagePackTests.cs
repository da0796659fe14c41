// The MessagePack hub protocol between hubflow and ASP.NET Core SignalR: the official .NET client with
// AddMessagePackProtocol() against hubflow's signalr_hub (beside a JSON client of the same hub), and hubflow's
// signalr source with `protocol: "messagepack"` against the KsReferenceServer.
using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using KsReferenceServer;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace HubflowPeers.Tests;

public sealed class MessagePackTests : IAsyncLifetime
{
    private const string Site = "site-a";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private readonly Scratch _scratch = new("hubflow-dotnet-msgpack-");
    private readonly TokenFactory _tokens = new();
    private readonly List<HubflowProcess> _processes = [];
    private readonly List<KsServer> _servers = [];
    private string _jwks = "", _roles = "";

    public Task InitializeAsync()
    {
        _jwks = _scratch.Write("jwks.json", _tokens.Jwks());
        _roles = _scratch.Write("roles.json", Json.Roles((Site, "admin", "site_admin")));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _processes) await p.DisposeAsync();
        foreach (var s in _servers) await s.DisposeAsync();
        _scratch.Dispose();
    }

    private HubflowProcess StartHub()
    {
        var hub = HubflowProcess.Run(_scratch, "hub", new JsonObject
        {
            ["data_dir"] = _scratch.Path("hub-state"),
            ["sources"] = new JsonObject
            {
                ["ks"] = new JsonObject
                {
                    ["type"] = "generator", ["rate"] = 400, ["sites"] = new JsonArray(Site), ["users_per_site"] = 3,
                    ["incident_ratio"] = 0, ["seed"] = 7,
                },
            },
            ["sinks"] = new JsonObject
            {
                ["hub"] = new JsonObject
                {
                    ["type"] = "signalr_hub", ["inputs"] = new JsonArray("ks"), ["listen"] = "127.0.0.1:0",
                    ["auth"] = new JsonObject
                    {
                        ["jwks_file"] = _jwks, ["issuer"] = TokenFactory.Issuer, ["audience"] = TokenFactory.Audience,
                    },
                    ["roles"] = new JsonObject { ["file"] = _roles },
                    ["ping_interval_s"] = 1,
                },
            },
        });
        _processes.Add(hub);
        return hub;
    }

    // The seed's C# sample, with the MessagePack protocol added where asked.
    private static (HubConnection connection, ConcurrentQueue<string> messages) Connect(string url, string token,
                                                                                        bool messagePack, bool reconnect = false)
    {
        var builder = new HubConnectionBuilder().WithUrl(url, options =>
        {
            options.AccessTokenProvider = () => Task.FromResult<string?>(token);
            options.SkipNegotiation = true;
            options.Transports = HttpTransportType.WebSockets;
        });
        if (messagePack) builder.AddMessagePackProtocol();
        if (reconnect) builder.WithAutomaticReconnect();
        var connection = builder.Build();
        var messages = new ConcurrentQueue<string>();
        connection.On<string>("ReceiveMessage", m => messages.Enqueue(m));
        return (connection, messages);
    }

    [Fact]
    public async Task TheDotnetClientInMessagePack_GetsWhatTheJsonClientGets_AndReconnectsAfterAShutdown()
    {
        var hub = StartHub();
        int port = await hub.ListeningPortAsync();
        string url = $"http://127.0.0.1:{port}/v1/hub/entries?site_id={Site}";
        string token = _tokens.Token("admin");
        var (json, jsonMessages) = Connect(url, token, messagePack: false);
        var (mp, mpMessages) = Connect(url, token, messagePack: true, reconnect: true);
        await json.StartAsync();
        await mp.StartAsync();
        await Wait.UntilAsync(() => jsonMessages.Count >= 200 && mpMessages.Count >= 200, Patience, "200 events each");

        // A hub method that does not exist: the Completion error, in MessagePack, and the connection stays.
        var e = await Assert.ThrowsAsync<HubException>(() => mp.InvokeAsync("NoSuchMethod"));
        Assert.Contains("Method does not exist.", e.Message);
        Assert.Equal(HubConnectionState.Connected, mp.State);
        await json.StopAsync();

        // The two clients joined a few events apart: from the first event both saw, the same strings in order.
        var a = jsonMessages.ToArray();
        var b = mpMessages.ToArray();
        int start = Array.FindIndex(b, m => m == a[0]);
        if (start < 0)
        {
            int inA = Array.FindIndex(a, m => m == b[0]);
            Assert.True(inA >= 0, "no event in common");
            a = a[inA..];
        }
        else
        {
            b = b[start..];
        }
        int n = Math.Min(a.Length, b.Length);
        Assert.True(n >= 100, $"only {n} events in common");
        Assert.Equal(a[..n], b[..n]);

        // A shutdown sends Close with allowReconnect: WithAutomaticReconnect starts.
        var reconnecting = new TaskCompletionSource();
        mp.Reconnecting += _ =>
        {
            reconnecting.TrySetResult();
            return Task.CompletedTask;
        };
        Assert.Equal(0, await hub.StopAsync());
        await reconnecting.Task.WaitAsync(Patience);
        await mp.DisposeAsync();
        await json.DisposeAsync();
    }

    [Fact]
    public async Task TheSourceInMessagePack_ConsumesAspNetCore()
    {
        var server = await KsServer.StartAsync(new KsServerOptions
        {
            Port = 0, JwksFile = _jwks, RolesFile = _roles, Issuer = TokenFactory.Issuer, Audience = TokenFactory.Audience,
        });
        _servers.Add(server);
        string token = _tokens.Token("admin");
        var output = _scratch.Path("mp-out.jsonl");
        var consumer = HubflowProcess.Run(_scratch, "mp-consumer", new JsonObject
        {
            ["data_dir"] = _scratch.Path("mp-consumer-state"),
            ["sources"] = new JsonObject
            {
                ["ks"] = new JsonObject
                {
                    ["type"] = "signalr", ["url"] = $"ws://127.0.0.1:{server.Port}/v1/hub/entries?site_id={Site}",
                    ["auth"] = new JsonObject { ["token"] = token }, ["protocol"] = "messagepack",
                    ["reconnect"] = new JsonObject { ["initial_ms"] = 50, ["max_ms"] = 300 },
                },
            },
            ["sinks"] = new JsonObject
            {
                ["out"] = new JsonObject { ["type"] = "file", ["inputs"] = new JsonArray("ks"), ["path"] = output },
            },
        });
        _processes.Add(consumer);
        await Wait.UntilAsync(() => server.Connections == 1, Patience, "the source connected");

        string[] Lines() => File.Exists(output) ? File.ReadAllLines(output).Where(l => l.Length > 0).ToArray() : [];
        var sent = new List<string>();
        for (int i = 1; i <= 300; i++)
        {
            // Non-ASCII text and escapes too: the string argument must arrive byte for byte.
            var entry = i % 10 == 0 ? KsEvents.Entry($"e{i}-é€😀\"\\", "admin") : KsEvents.Entry($"e{i}", null);
            sent.Add(entry);
            await server.PublishAsync("entries", Site, null, entry);
        }
        await Wait.UntilAsync(() => Lines().Length >= 300, Patience, "300 entries");
        Assert.Equal(sent, Lines());

        // ASP.NET Core's pings keep the connection, and hubflow's keep ASP.NET Core's: still one connection later.
        Assert.Equal(1, server.Connections);
        Assert.Equal(0, await consumer.StopAsync());
        consumer.AssertLog("protocol_errors=0");
        consumer.AssertLog("disconnects=0");
        Assert.DoesNotContain(token[^20..], consumer.Log);
    }
}
