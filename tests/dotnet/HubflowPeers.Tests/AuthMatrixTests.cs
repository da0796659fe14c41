// The same upgrade requests to hubflow's signalr_hub and to ASP.NET Core's own JwtBearer handler and authorization
// policy (KsReferenceServer), both configured alike: one JWKS file, issuer, audience, 30 s of leeway, one roles
// file. Each request must get the status KS documents, and the same from both; the differences that are meant are
// listed here and in plugins/signalr/README.md with their reasons.
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using KsReferenceServer;
using Xunit;
using Xunit.Abstractions;

namespace HubflowPeers.Tests;

public sealed class AuthMatrixTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Site = "site-a";
    private const string OtherSite = "site-b";

    private readonly Scratch _scratch = new("hubflow-dotnet-auth-");
    private readonly TokenFactory _tokens = new();
    private HubflowProcess? _hubflow;
    private KsServer? _aspnet;
    private int _hubflowPort;

    public async Task InitializeAsync()
    {
        var jwks = _scratch.Write("jwks.json", _tokens.Jwks());
        var roles = _scratch.Write("roles.json", Json.Roles(
            (Site, "admin", "site_admin"), (Site, "super", "site_super_user"), (Site, "plain", "site_user"),
            (Site, "guest", "site_guest"), (Site, "mobile", "site_mobile_user"), (OtherSite, "admin", "site_admin"),
            (OtherSite, "plain", "site_admin")));
        _hubflow = HubflowProcess.Run(_scratch, "hub", new JsonObject
        {
            ["data_dir"] = _scratch.Path("state"),
            ["sources"] = new JsonObject
            {
                ["ks"] = new JsonObject { ["type"] = "generator", ["rate"] = 1, ["sites"] = new JsonArray(Site) },
            },
            ["sinks"] = new JsonObject
            {
                ["hub"] = new JsonObject
                {
                    ["type"] = "signalr_hub", ["inputs"] = new JsonArray("ks"), ["listen"] = "127.0.0.1:0",
                    ["auth"] = new JsonObject
                    {
                        ["jwks_file"] = jwks, ["issuer"] = TokenFactory.Issuer, ["audience"] = TokenFactory.Audience,
                        ["leeway_s"] = 30,
                    },
                    ["roles"] = new JsonObject { ["file"] = roles },
                },
            },
        });
        _hubflowPort = await _hubflow.ListeningPortAsync();
        _aspnet = await KsServer.StartAsync(new KsServerOptions
        {
            JwksFile = jwks, RolesFile = roles, Issuer = TokenFactory.Issuer, Audience = TokenFactory.Audience,
            LeewaySeconds = 30,
        });
    }

    public async Task DisposeAsync()
    {
        if (_aspnet is not null) await _aspnet.DisposeAsync();
        if (_hubflow is not null) await _hubflow.DisposeAsync();
        _scratch.Dispose();
    }

    private sealed record Case(string Name, string PathAndQuery, string? Authorization, int Expected);

    // Where hubflow and ASP.NET Core answer differently on purpose: case name -> (hubflow, ASP.NET Core, why).
    private static readonly Dictionary<string, (int hubflow, int aspnet, string why)> Deliberate = new()
    {
        ["good token in the header, expired one in the query"] = (101, 401,
            "hubflow takes the Authorization header over access_token; the ASP.NET Core documentation's " +
            "OnMessageReceived pattern lets the query replace the header"),
        ["expired token in the header, good one in the query"] = (401, 101, "the same rule, the other way round"),
        ["unknown kid, right key"] = (401, 101,
            "hubflow refuses a kid that its JWKS does not hold (after one rate-limited reload); ASP.NET Core's " +
            "default TryAllIssuerSigningKeys then tries every key. A kid-less token is tried against every key by both"),
        ["exp as a string"] = (401, 101,
            "RFC 7519 makes exp a JSON number; Microsoft.IdentityModel also reads a numeric string"),
        ["sub as a number"] = (401, 403,
            "RFC 7519 makes sub a string; Microsoft.IdentityModel turns a number into a claim, which then names no user " +
            "of the roles file"),
        ["site_id twice"] = (400, 403,
            "hubflow refuses a repeated site_id, user_id or access_token; ASP.NET Core's query collection joins the " +
            "values with a comma, which names no site"),
    };

    private List<Case> Cases()
    {
        string entries = $"/v1/hub/entries?site_id={Site}";
        string incidents = $"/v1/hub/incidents?site_id={Site}";
        string Bearer(string token) => $"Bearer {token}";
        string With(Action<JsonObject> change, string sub = "admin")
        {
            var c = TokenFactory.Claims(sub);
            change(c);
            return _tokens.Sign(TokenFactory.Header(), c);
        }
        string WithHeader(JsonObject header) => _tokens.Sign(header, TokenFactory.Claims("admin"));
        long now = TokenFactory.Now;
        string admin = _tokens.Token("admin");
        string Lifetime(long nbf, long exp) => With(c => { c["iat"] = nbf; c["nbf"] = nbf; c["exp"] = exp; });
        string expired = With(c => c["exp"] = now - 3600);
        string Query(string path, string token) => $"{path}&access_token={Uri.EscapeDataString(token)}";

        // The published key's SubjectPublicKeyInfo PEM as an HMAC secret: the classic algorithm confusion attack.
        byte[] publicPem = Encoding.ASCII.GetBytes(_tokens.Key.ExportSubjectPublicKeyInfoPem());
        string hs256WithPublicKey = TokenFactory.SignWith(TokenFactory.Header("HS256"), TokenFactory.Claims("admin"),
            input => HMACSHA256.HashData(publicPem, input));
        string alg(string name) => TokenFactory.SignWith(TokenFactory.Header(name), TokenFactory.Claims("admin"), _ => []);
        // A valid header and signature (of another payload) around the admin's payload.
        string[] superParts = _tokens.Token("super").Split('.');
        string tampered = $"{superParts[0]}.{admin.Split('.')[1]}.{superParts[2]}";

        return
        [
            // Well-formed tokens, both hubs, header and query.
            new("valid, entries, header", entries, Bearer(admin), 101),
            new("valid, incidents, header", incidents, Bearer(admin), 101),
            new("valid, entries, query", Query(entries, admin), null, 101),
            new("valid, incidents, query", Query(incidents, admin), null, 101),
            new("scheme name in lower case", entries, $"bearer {admin}", 101),
            // Missing or unreadable tokens.
            new("no token", entries, null, 401),
            new("empty bearer", entries, "Bearer ", 401),
            new("Basic credentials instead of a bearer token", entries, "Basic YWRtaW46YWRtaW4=", 401),
            new("not a JWT", entries, "Bearer not.a.jwt", 401),
            new("two parts only", entries, Bearer(admin[..admin.LastIndexOf('.')]), 401),
            // Lifetime, with 30 s of leeway.
            new("expired an hour ago", entries, Bearer(expired), 401),
            new("expired an hour ago, in the query", Query(entries, expired), null, 401),
            new("expired 20 s ago (inside the leeway)", entries, Bearer(Lifetime(now - 3620, now - 20)), 101),
            new("expired 45 s ago (past the leeway)", entries, Bearer(Lifetime(now - 3645, now - 45)), 401),
            new("nbf after exp, both inside the leeway", entries, Bearer(Lifetime(now + 10, now + 5)), 401),
            new("nbf 20 s ahead (inside the leeway)", entries, Bearer(With(c => c["nbf"] = now + 20)), 101),
            new("nbf 45 s ahead (past the leeway)", entries, Bearer(With(c => c["nbf"] = now + 45)), 401),
            new("nbf an hour ahead", entries, Bearer(With(c => c["nbf"] = now + 3600)), 401),
            new("no nbf", entries, Bearer(With(c => c.Remove("nbf"))), 101),
            new("no exp", entries, Bearer(With(c => c.Remove("exp"))), 401),
            new("exp as a string", entries, Bearer(With(c => c["exp"] = (now + 3600).ToString())), 401),
            // Signatures and algorithms.
            new("signed with another RSA key", entries, Bearer(_tokens.Sign(TokenFactory.Header(), TokenFactory.Claims("admin"), _tokens.OtherKey)), 401),
            new("payload swapped under a valid signature", entries, Bearer(tampered), 401),
            new("signature removed", entries, Bearer(admin[..(admin.LastIndexOf('.') + 1)]), 401),
            new("alg none, no signature", entries, Bearer(alg("none")), 401),
            new("alg None, no signature", entries, Bearer(alg("None")), 401),
            new("HS256 signed with the RSA public key", entries, Bearer(hs256WithPublicKey), 401),
            new("RS384 with the right key", entries, Bearer(_tokens.Sign(TokenFactory.Header("RS384"), TokenFactory.Claims("admin"))), 401),
            new("unknown kid, right key", entries, Bearer(WithHeader(TokenFactory.Header(kid: "rotated-away"))), 401),
            new("no kid, right key", entries, Bearer(WithHeader(TokenFactory.Header(kid: null))), 101),
            new("typ JWT instead of at+jwt", entries, Bearer(WithHeader(new JsonObject { ["alg"] = "RS256", ["typ"] = "JWT", ["kid"] = TokenFactory.Kid })), 101),
            // ES256 beside RS256 in the same JWKS.
            new("ES256 with the published EC key", entries, Bearer(_tokens.SignEs256(TokenFactory.Header("ES256", TokenFactory.EcKid), TokenFactory.Claims("admin"))), 101),
            new("ES256 without kid", entries, Bearer(_tokens.SignEs256(TokenFactory.Header("ES256", null), TokenFactory.Claims("admin"))), 101),
            new("ES256 signed with another EC key", entries, Bearer(_tokens.SignEs256(TokenFactory.Header("ES256", TokenFactory.EcKid), TokenFactory.Claims("admin"), _tokens.OtherEcKey)), 401),
            new("ES256 signature in DER form", entries, Bearer(_tokens.SignEs256(TokenFactory.Header("ES256", TokenFactory.EcKid), TokenFactory.Claims("admin"), format: DSASignatureFormat.Rfc3279DerSequence)), 401),
            new("RS256 naming the EC key's kid", entries, Bearer(_tokens.Sign(TokenFactory.Header("RS256", TokenFactory.EcKid), TokenFactory.Claims("admin"))), 401),
            new("ES256 naming the RSA key's kid", entries, Bearer(_tokens.SignEs256(TokenFactory.Header("ES256", TokenFactory.Kid), TokenFactory.Claims("admin"))), 401),
            // Issuer and audience.
            new("wrong issuer", entries, Bearer(With(c => c["iss"] = "https://evil.test")), 401),
            new("issuer with a trailing slash", entries, Bearer(With(c => c["iss"] = TokenFactory.Issuer + "/")), 401),
            new("no issuer", entries, Bearer(With(c => c.Remove("iss"))), 401),
            new("wrong audience", entries, Bearer(With(c => c["aud"] = "admin_api")), 401),
            new("no audience", entries, Bearer(With(c => c.Remove("aud"))), 401),
            new("audience as an array holding user_api", entries, Bearer(With(c => c["aud"] = new JsonArray("other_api", "user_api"))), 101),
            new("no sub", entries, Bearer(With(c => c.Remove("sub"))), 401),
            new("empty sub", entries, Bearer(With(c => c["sub"] = "", "admin")), 401),
            // Scope.
            new("scope as a string", entries, Bearer(With(c => c["scope"] = "user_api.full_access")), 101),
            new("scope as a space-separated string", entries, Bearer(With(c => c["scope"] = "openid user_api.full_access")), 101),
            new("scope as an array with others", entries, Bearer(With(c => c["scope"] = new JsonArray("openid", "user_api.full_access"))), 101),
            new("no scope", entries, Bearer(With(c => c.Remove("scope"))), 403),
            new("another scope", entries, Bearer(With(c => c["scope"] = new JsonArray("user_api.read"))), 403),
            new("scope in upper case", entries, Bearer(With(c => c["scope"] = "USER_API.FULL_ACCESS")), 403),
            new("scope with a suffix", entries, Bearer(With(c => c["scope"] = "user_api.full_access_extra")), 403),
            // Roles per site.
            new("site_super_user, whole site", entries, Bearer(_tokens.Token("super")), 101),
            new("site_admin, another user's entries", $"{entries}&user_id=plain", Bearer(admin), 101),
            new("site_user, whole site", entries, Bearer(_tokens.Token("plain")), 403),
            new("site_user, whole site incidents", incidents, Bearer(_tokens.Token("plain")), 403),
            new("site_user, own entries", $"{entries}&user_id=plain", Bearer(_tokens.Token("plain")), 101),
            new("site_user, own incidents, query", Query($"{incidents}&user_id=plain", _tokens.Token("plain")), null, 101),
            new("site_user, another user's entries", $"{entries}&user_id=admin", Bearer(_tokens.Token("plain")), 403),
            new("site_user, another user's entries, query", Query($"{entries}&user_id=admin", _tokens.Token("plain")), null, 403),
            new("site_guest grants nothing", entries, Bearer(_tokens.Token("guest")), 403),
            new("site_mobile_user grants nothing", $"{entries}&user_id=mobile", Bearer(_tokens.Token("mobile")), 403),
            new("user with no role in the site", entries, Bearer(_tokens.Token("stranger")), 403),
            new("a site that is not in the roles file", $"/v1/hub/entries?site_id=site-unknown", Bearer(admin), 403),
            new("site_super_user of one site, in another", $"/v1/hub/incidents?site_id={OtherSite}", Bearer(_tokens.Token("super")), 403),
            // Malformed requests.
            new("no site_id", "/v1/hub/entries", Bearer(admin), 400),
            new("no site_id, no token", "/v1/hub/entries", null, 400),
            new("empty user_id", $"{entries}&user_id=", Bearer(admin), 400),
            // Request forms an integrator may send, and claims of unusual types.
            new("two spaces after Bearer", entries, $"Bearer  {admin}", 101),
            new("percent-encoded site_id", "/v1/hub/entries?site_id=site%2Da", Bearer(admin), 101),
            new("path in another case", $"/V1/Hub/Entries?site_id={Site}", Bearer(admin), 101),
            new("path with a trailing slash", $"/v1/hub/entries/?site_id={Site}", Bearer(admin), 101),
            new("query parameter name in another case", $"/v1/hub/entries?Site_Id={Site}", Bearer(admin), 101),
            new("site_id twice", $"/v1/hub/entries?site_id={OtherSite}&site_id={Site}", Bearer(_tokens.Token("super")), 400),
            new("sub as a number", entries, Bearer(With(c => c["sub"] = 12345)), 401),
            new("exp with a fraction", entries, Bearer(With(c => c["exp"] = now + 3600.5)), 101),
            new("exp past the year 9999", entries, Bearer(With(c => c["exp"] = 253402300800L + 1000)), 101),
            // Both places at once.
            new("good token in the header, expired one in the query", Query(entries, expired), Bearer(admin), 101),
            new("expired token in the header, good one in the query", Query(entries, admin), Bearer(expired), 401),
        ];
    }

    [Fact]
    public async Task HubflowAndAspNetCoreAnswerTheSameStatuses()
    {
        var cases = Cases();
        Assert.True(cases.Count >= 30);
        var report = new StringBuilder();
        var failures = new List<string>();
        int same = 0;
        foreach (var c in cases)
        {
            int hubflow = await Net.UpgradeStatusAsync(_hubflowPort, c.PathAndQuery, c.Authorization);
            int aspnet = await Net.UpgradeStatusAsync(_aspnet!.Port, c.PathAndQuery, c.Authorization);
            report.AppendLine($"{hubflow} {aspnet} {(hubflow == aspnet ? "same" : "DIFF")}  {c.Name}");
            if (hubflow == aspnet) same++;
            if (Deliberate.TryGetValue(c.Name, out var d))
            {
                if (hubflow != d.hubflow || aspnet != d.aspnet)
                    failures.Add($"{c.Name}: hubflow {hubflow} (meant {d.hubflow}), ASP.NET Core {aspnet} (meant {d.aspnet})");
            }
            else if (hubflow != c.Expected || aspnet != c.Expected)
            {
                failures.Add($"{c.Name}: hubflow {hubflow}, ASP.NET Core {aspnet}, KS {c.Expected}");
            }
        }
        report.AppendLine($"{same} of {cases.Count} the same; {cases.Count - same} differ ({Deliberate.Count} on purpose)");
        output.WriteLine(report.ToString());
        Assert.True(failures.Count == 0, string.Join("\n", failures) + "\n\n" + report);
    }
}
