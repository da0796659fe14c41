// Shared by the suites: hubflow processes, tokens minted here (RS256 with a JWKS file, and the malformed and hostile
// variants an identity server never makes), raw WebSocket upgrade requests, free ports and waits on conditions.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace HubflowPeers.Tests;

public static class Wait
{
    // Polls `condition` until it holds; fails naming `what` after `timeout`. Tests wait on conditions, never sleep.
    public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out after {timeout.TotalSeconds} s waiting for {what}");
            await Task.Delay(20);
        }
    }

    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out after {timeout.TotalSeconds} s waiting for {what}");
            await Task.Delay(50);
        }
    }
}

public static class Net
{
    // A port free at this moment, for a server that must come back on the same port after a restart.
    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    // The status line a server answers to a WebSocket upgrade request (101 or a refusal). Raw TCP, so that nothing
    // between the test and the server adds, drops or reinterprets a header.
    public static async Task<int> UpgradeStatusAsync(int port, string pathAndQuery, string? authorization = null)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        var stream = client.GetStream();
        var request = new StringBuilder()
            .Append($"GET {pathAndQuery} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n")
            .Append("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
            .Append("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
        if (authorization is not null) request.Append($"Authorization: {authorization}\r\n");
        request.Append("\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.ToString()));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var buffer = new byte[1024];
        var text = new StringBuilder();
        while (!text.ToString().Contains("\r\n"))
        {
            int n = await stream.ReadAsync(buffer, cts.Token);
            if (n == 0) throw new IOException($"{pathAndQuery}: connection closed before a status line ({text})");
            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        var m = Regex.Match(text.ToString(), @"^HTTP/1\.1 (\d{3})");
        if (!m.Success) throw new IOException($"{pathAndQuery}: not an HTTP/1.1 status line: {text}");
        return int.Parse(m.Groups[1].Value);
    }
}

// A directory under the system temp folder, removed when disposed.
public sealed class Scratch : IDisposable
{
    public Scratch(string prefix) => Dir = Directory.CreateTempSubdirectory(prefix).FullName;
    public string Dir { get; }
    public string Path(string name) => System.IO.Path.Combine(Dir, name);

    // Replaces a file at once (write then rename), so a reader never sees half of it.
    public string Write(string name, string text)
    {
        var path = Path(name);
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

// One `hubflow run` process on a pipeline object; its stderr is kept for log assertions.
public sealed class HubflowProcess : IAsyncDisposable
{
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    private const int SIGTERM = 15;
    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private readonly TaskCompletionSource _stderrDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static string Binary =>
        Environment.GetEnvironmentVariable("HUBFLOW_BIN") is { Length: > 0 } bin
            ? bin
            : throw new InvalidOperationException("HUBFLOW_BIN is not set: point it at build/bin/hubflow (ctest sets it)");

    private HubflowProcess(Process process) => _process = process;

    public string Log { get { lock (_log) return _log.ToString(); } }
    public bool Exited => _process.HasExited;

    public static HubflowProcess Run(Scratch scratch, string name, JsonObject pipeline)
    {
        var file = scratch.Write($"{name}.json", pipeline.ToJsonString());
        var psi = new ProcessStartInfo(Binary) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("run");
        psi.ArgumentList.Add(file);
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {Binary}");
        var h = new HubflowProcess(process);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) { h._stderrDone.TrySetResult(); return; }
            lock (h._log) h._log.Append(e.Data).Append('\n');
        };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return h;
    }

    // Fails with the whole log, which xunit's Assert.Matches would cut to a few dozen characters.
    public void AssertLog(string pattern, bool present = true)
    {
        if (Regex.IsMatch(Log, pattern) != present)
            throw new Xunit.Sdk.XunitException($"the log {(present ? "lacks" : "has")} /{pattern}/:\n{Log}");
    }

    public Task WaitForLogAsync(string pattern, TimeSpan timeout, string what) =>
        Wait.UntilAsync(() => Regex.IsMatch(Log, pattern) || Exited, timeout, what).ContinueWith(t =>
        {
            t.GetAwaiter().GetResult();
            if (!Regex.IsMatch(Log, pattern)) throw new InvalidOperationException($"hubflow exited while waiting for {what}:\n{Log}");
        });

    // The port a signalr_hub listening on port 0 logged.
    public async Task<int> ListeningPortAsync()
    {
        await WaitForLogAsync(@"on ws://127\.0\.0\.1:\d+", TimeSpan.FromSeconds(15), "the hub to listen");
        return int.Parse(Regex.Match(Log, @"on ws://127\.0\.0\.1:(\d+)").Groups[1].Value);
    }

    // SIGTERM, the way an operator stops it; returns the exit code.
    public async Task<int> StopAsync()
    {
        if (!_process.HasExited) kill(_process.Id, SIGTERM);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await _process.WaitForExitAsync(cts.Token);
        await _stderrDone.Task.WaitAsync(TimeSpan.FromSeconds(5));
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}

// An RSA signing key with its JWKS, and tokens: the well-formed ones an identity server issues and the variants an
// attacker or a broken issuer sends. Built by hand (not through a JWT library) so that every byte is the test's choice.
public sealed class TokenFactory
{
    public const string Issuer = "https://identity.test";
    public const string Audience = "user_api";
    public const string Kid = "test-key-1";
    public const string EcKid = "test-key-ec";

    public RSA Key { get; } = RSA.Create(2048);
    public RSA OtherKey { get; } = RSA.Create(2048);
    public ECDsa EcKey { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    public ECDsa OtherEcKey { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public string Jwks()
    {
        var p = Key.ExportParameters(false);
        var ec = EcKey.ExportParameters(false);
        return new JsonObject
        {
            ["keys"] = new JsonArray(
                new JsonObject
                {
                    ["kty"] = "RSA", ["use"] = "sig", ["alg"] = "RS256", ["kid"] = Kid,
                    ["n"] = B64(p.Modulus!), ["e"] = B64(p.Exponent!),
                },
                new JsonObject
                {
                    ["kty"] = "EC", ["crv"] = "P-256", ["use"] = "sig", ["alg"] = "ES256", ["kid"] = EcKid,
                    ["x"] = B64(ec.Q.X!), ["y"] = B64(ec.Q.Y!),
                }),
        }.ToJsonString();
    }

    public static long Now => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    // The claims of a real KS access token for `sub`, valid for an hour.
    public static JsonObject Claims(string sub)
    {
        long now = Now;
        return new JsonObject
        {
            ["iss"] = Issuer, ["aud"] = Audience, ["sub"] = sub, ["client_id"] = "hubflow-tests",
            ["iat"] = now, ["nbf"] = now, ["exp"] = now + 3600,
            ["scope"] = new JsonArray("user_api.full_access"),
        };
    }

    public static JsonObject Header(string alg = "RS256", string? kid = Kid)
    {
        var h = new JsonObject { ["alg"] = alg, ["typ"] = "at+jwt" };
        if (kid is not null) h["kid"] = kid;
        return h;
    }

    public string Token(string sub) => Sign(Header(), Claims(sub));

    // RS256 (or RS384) with `key` (the published key unless given); other algorithms through SignWith.
    public string Sign(JsonObject header, JsonObject claims, RSA? key = null)
    {
        string input = B64(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + B64(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        var hash = (string?)header["alg"] == "RS384" ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256;
        var sig = (key ?? Key).SignData(Encoding.ASCII.GetBytes(input), hash, RSASignaturePadding.Pkcs1);
        return input + "." + B64(sig);
    }

    // ES256: the JWS signature is R || S (IEEE P1363); `format` can make the DER form a careless signer sends.
    public string SignEs256(JsonObject header, JsonObject claims, ECDsa? key = null,
                            DSASignatureFormat format = DSASignatureFormat.IeeeP1363FixedFieldConcatenation) =>
        SignWith(header, claims, input => (key ?? EcKey).SignData(input, HashAlgorithmName.SHA256, format));

    public static string SignWith(JsonObject header, JsonObject claims, Func<byte[], byte[]> signer)
    {
        string input = B64(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + B64(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        return input + "." + B64(signer(Encoding.ASCII.GetBytes(input)));
    }

    public static string B64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

public static class Json
{
    public static JsonObject Parse(string text) => JsonNode.Parse(text)!.AsObject();
    public static string Roles(params (string site, string user, string role)[] rows)
    {
        var o = new JsonObject();
        foreach (var (site, user, role) in rows)
        {
            if (o[site] is not JsonObject users) o[site] = users = new JsonObject();
            users[user] = role;
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
