// TokenVerifier with jwks_url, against real Poco HTTP and HTTPS servers on 127.0.0.1 (ports chosen by the system).

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "auth/token_minter.h"
#include "auth/token_verifier.h"
#include "auth_test_support.h"

namespace hubflow::signalr::testing {
namespace {

// Serves one JWKS document (changeable) at any path, counting requests.
class JwksServer {
public:
    JwksServer() : JwksServer(Poco::Net::ServerSocket(Poco::Net::SocketAddress("127.0.0.1", 0))) {}
    explicit JwksServer(const Poco::Net::ServerSocket& socket, const std::string& scheme = "http")
        : socket_(socket), scheme_(scheme) {
        auto params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(2);
        server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), socket_, params);
        server_->start();
    }
    ~JwksServer() { server_->stopAll(true); }

    std::string url(const std::string& path = "/.well-known/jwks.json") const {
        return scheme_ + "://127.0.0.1:" + std::to_string(socket_.address().port()) + path;
    }
    void set(const std::string& document, int status = 200) {
        std::lock_guard lock(mutex_);
        document_ = document;
        status_ = status;
    }
    int hits() const { return hits_.load(); }

private:
    class Handler : public Poco::Net::HTTPRequestHandler {
    public:
        explicit Handler(JwksServer& owner) : owner_(owner) {}
        void handleRequest(Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse& response) override {
            ++owner_.hits_;
            std::string body;
            int status = 0;
            {
                std::lock_guard lock(owner_.mutex_);
                body = owner_.document_;
                status = owner_.status_;
            }
            response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
            response.setContentType("application/json");
            response.sendBuffer(body.data(), body.size());
        }

    private:
        JwksServer& owner_;
    };
    class Factory : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(JwksServer& owner) : owner_(owner) {}
        Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new Handler(owner_);
        }

    private:
        JwksServer& owner_;
    };

    Poco::Net::ServerSocket socket_;
    std::string scheme_;
    std::unique_ptr<Poco::Net::HTTPServer> server_;
    std::mutex mutex_;
    std::string document_ = "{\"keys\":[]}";
    int status_ = 200;
    std::atomic<int> hits_{0};
};

std::string jwks(const TestKey& key, const std::string& kid) {
    return jwks_for_public_key(key.private_pem_file, kid);
}

class JwksUrlTest : public ::testing::Test {
protected:
    JwksServer server;
    std::vector<std::string> events;
    std::mutex events_mutex;

    std::unique_ptr<TokenVerifier> make(const std::string& url) {
        AuthSettings s;
        s.jwks_url = url;
        return std::make_unique<TokenVerifier>(s, [this](const std::string& e) {
            std::lock_guard lock(events_mutex);
            events.push_back(e);
        });
    }
};

TEST_F(JwksUrlTest, KeysAreFetchedAtConstruction) {
    server.set(merge_jwks({jwks(keys().rsa_a, "rsa-a"), jwks(keys().ec_a, "ec-a")}));
    auto v = make(server.url());
    EXPECT_EQ(server.hits(), 1);
    expect_accepted(*v, mint_token(signed_options("RS256", keys().rsa_a, "rsa-a")), test_now());
    expect_accepted(*v, mint_token(signed_options("ES256", keys().ec_a, "ec-a")), test_now());
    expect_accepted(*v, mint_token(signed_options("ES256", keys().ec_a, "")), test_now());
    EXPECT_EQ(server.hits(), 1);
    EXPECT_TRUE(events.empty());
}

TEST_F(JwksUrlTest, UnknownKidRefetchesRateLimited) {
    server.set(jwks(keys().rsa_a, "a"));
    auto v = make(server.url());
    ASSERT_EQ(server.hits(), 1);
    const std::string token_b = mint_token(signed_options("RS256", keys().rsa_b, "b"));
    const std::string token_c = mint_token(signed_options("RS256", keys().rsa_c, "c"));

    server.set(merge_jwks({jwks(keys().rsa_a, "a"), jwks(keys().rsa_b, "b")}));
    expect_accepted(*v, token_b, test_now());
    EXPECT_EQ(server.hits(), 2);

    // c is not published: one refetch per 30 s at most, however many tokens ask.
    for (int i = 0; i < 5; ++i)
        expect_refused(*v, token_c, at(kNowS + i), "unknown key id");
    EXPECT_EQ(server.hits(), 2);
    expect_refused(*v, token_c, at(kNowS + 30), "unknown key id");
    EXPECT_EQ(server.hits(), 3);
    expect_refused(*v, token_c, at(kNowS + 59), "unknown key id");
    EXPECT_EQ(server.hits(), 3);

    server.set(merge_jwks({jwks(keys().rsa_a, "a"), jwks(keys().rsa_b, "b"), jwks(keys().rsa_c, "c")}));
    expect_accepted(*v, token_c, at(kNowS + 60));
    EXPECT_EQ(server.hits(), 4);
    // Known kids never fetch.
    expect_accepted(*v, token_b, at(kNowS + 1000));
    EXPECT_EQ(server.hits(), 4);
}

TEST_F(JwksUrlTest, ServerDownAtStartIsRetriedWhenATokenNeedsAKey) {
    server.set("oops", 503);
    std::unique_ptr<TokenVerifier> v;
    ASSERT_NO_THROW(v = make(server.url()));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_NE(events[0].find("initial fetch failed"), std::string::npos) << events[0];
    EXPECT_NE(events[0].find("503"), std::string::npos) << events[0];

    server.set(jwks(keys().rsa_a, "a"));
    expect_accepted(*v, mint_token(signed_options("RS256", keys().rsa_a, "a")), test_now());
    EXPECT_EQ(server.hits(), 2);
}

TEST_F(JwksUrlTest, FailedRefetchKeepsThePreviousKeys) {
    server.set(jwks(keys().rsa_a, "a"));
    auto v = make(server.url());
    server.set("{\"keys\": [", 200);
    expect_refused(*v, mint_token(signed_options("RS256", keys().rsa_b, "b")), test_now(), "unknown key id");
    server.set("", 500);
    expect_refused(*v, mint_token(signed_options("RS256", keys().rsa_b, "b")), at(kNowS + 30), "unknown key id");
    EXPECT_EQ(server.hits(), 3);
    expect_accepted(*v, mint_token(signed_options("RS256", keys().rsa_a, "a")), at(kNowS + 30));
    ASSERT_EQ(events.size(), 2u);
    EXPECT_NE(events[0].find("reload failed"), std::string::npos) << events[0];
    EXPECT_NE(events[1].find("500"), std::string::npos) << events[1];
}

TEST_F(JwksUrlTest, MessagesLeaveOutTheQueryString) {
    server.set("", 500);
    auto v = make(server.url("/jwks?api_key=do-not-print-me"));
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].find("do-not-print-me"), std::string::npos) << events[0];
    EXPECT_NE(events[0].find("/jwks"), std::string::npos) << events[0];
}

TEST_F(JwksUrlTest, UnreachableServerIsNotAConfigurationError) {
    std::string url;
    {
        // A port that was just free.
        Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
        url = "http://127.0.0.1:" + std::to_string(probe.address().port()) + "/jwks";
    }
    std::unique_ptr<TokenVerifier> v;
    ASSERT_NO_THROW(v = make(url));
    EXPECT_EQ(events.size(), 1u);
    expect_refused(*v, mint_token(signed_options("RS256", keys().rsa_a, "a")), test_now(), "unknown key id");
    // HS256 was never configured.
    expect_refused(*v, mint_token(hs256_options()), test_now(), "algorithm not allowed");
}

TEST_F(JwksUrlTest, ConcurrentUnknownKidsMakeOneFetch) {
    server.set(jwks(keys().rsa_a, "a"));
    auto v = make(server.url());
    server.set(merge_jwks({jwks(keys().rsa_a, "a"), jwks(keys().rsa_b, "b")}));
    const std::string token_b = mint_token(signed_options("RS256", keys().rsa_b, "b"));
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            if (v->verify(token_b, test_now()).ok) ++ok;
        });
    }
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(ok.load(), 8);
    EXPECT_EQ(server.hits(), 2);
}

// ---- HTTPS: the identity server's certificate is verified against the system trust store ----

struct X509Free {
    void operator()(X509* p) const { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
    ASSERT_NE(ext, nullptr) << value;
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

// A certificate for `name` (CN and subjectAltName), signed by `issuer` or self-signed.
X509Ptr make_certificate(EVP_PKEY* key, const std::string& name, bool ca, EVP_PKEY* issuer_key = nullptr,
                         X509* issuer = nullptr) {
    static long serial = 1;
    X509Ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* subject = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1,
                               -1, 0);
    X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
    if (ca) {
        add_extension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_extension(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(cert.get(), &ctx, NID_basic_constraints, "CA:FALSE");
        const bool ip = name.find_first_not_of("0123456789.") == std::string::npos;
        add_extension(cert.get(), &ctx, NID_subject_alt_name, (ip ? "IP:" : "DNS:") + name);
    }
    X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256());
    return cert;
}

std::string pem_of(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    return text;
}

class JwksHttpsTest : public ::testing::Test {
protected:
    // The client TLS context is made once per process and reads the trust store then, so the test CA is made once
    // per process too (a --gtest_repeat must not bring a new one) and put in place, through OpenSSL's
    // SSL_CERT_FILE, before any HTTPS fetch. No other test in this program uses HTTPS.
    struct TestCa {
        TempDir dir;
        PkeyPtr key{EVP_RSA_gen(2048)};
        X509Ptr cert = make_certificate(key.get(), "hubflow test CA", true);
        TestCa() {
            write_file(dir.file("ca.pem"), pem_of(cert.get()));
            setenv("SSL_CERT_FILE", dir.file("ca.pem").c_str(), 1);
        }
    };
    static TestCa& ca() {
        static TestCa instance;
        return instance;
    }
    static void SetUpTestSuite() { ca(); }

    // An HTTPS server on 127.0.0.1 with a certificate for `name`, from the test CA or self-signed.
    static std::unique_ptr<JwksServer> https_server(const std::string& name, bool from_test_ca) {
        static int n = 0;
        const std::string base = ca().dir.file("server" + std::to_string(n++));
        PkeyPtr key(EVP_EC_gen("P-256"));
        X509Ptr cert = from_test_ca ? make_certificate(key.get(), name, false, ca().key.get(), ca().cert.get())
                                    : make_certificate(key.get(), name, false);
        write_file(base + ".crt", pem_of(cert.get()));
        BIO* bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
        char* data = nullptr;
        const long len = BIO_get_mem_data(bio, &data);
        write_file(base + ".key", std::string(data, static_cast<std::size_t>(len)));
        BIO_free(bio);
        Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::SERVER_USE, base + ".key",
                                                                 base + ".crt", "", Poco::Net::Context::VERIFY_NONE);
        Poco::Net::SecureServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0), 64, context);
        return std::make_unique<JwksServer>(socket, "https");
    }

    std::vector<std::string> events;
    std::unique_ptr<TokenVerifier> make(const std::string& url) {
        AuthSettings s;
        s.jwks_url = url;
        return std::make_unique<TokenVerifier>(s, [this](const std::string& e) { events.push_back(e); });
    }
};

TEST_F(JwksHttpsTest, TrustedCertificateForTheHostIsAccepted) {
    auto server = https_server("127.0.0.1", true);
    server->set(jwks(keys().ec_a, "ec-a"));
    auto v = make(server->url());
    EXPECT_TRUE(events.empty()) << events.front();
    EXPECT_EQ(server->hits(), 1);
    expect_accepted(*v, mint_token(signed_options("ES256", keys().ec_a, "ec-a")), test_now());
}

TEST_F(JwksHttpsTest, UntrustedCertificateIsRefused) {
    auto server = https_server("127.0.0.1", false);
    server->set(jwks(keys().ec_a, "ec-a"));
    auto v = make(server->url());
    ASSERT_EQ(events.size(), 1u);
    EXPECT_NE(events[0].find("initial fetch failed"), std::string::npos) << events[0];
    EXPECT_NE(events[0].find("ertificate"), std::string::npos) << events[0];
    EXPECT_EQ(server->hits(), 0);
    expect_refused(*v, mint_token(signed_options("ES256", keys().ec_a, "ec-a")), test_now(), "unknown key id");
}

TEST_F(JwksHttpsTest, CertificateForAnotherHostIsRefused) {
    auto server = https_server("identity.example", true);
    server->set(jwks(keys().ec_a, "ec-a"));
    auto v = make(server->url());
    ASSERT_EQ(events.size(), 1u);
    EXPECT_NE(events[0].find("initial fetch failed"), std::string::npos) << events[0];
    EXPECT_NE(events[0].find("ertificate"), std::string::npos) << events[0];
    EXPECT_EQ(server->hits(), 0);
}

}  // namespace
}  // namespace hubflow::signalr::testing
