// `hubflow token`: development JWTs for the signalr_hub sink, so demos and tests need no identity server.
// The minting itself is the signalr plugin's (auth/token_minter.h): one implementation of the token format.

#include <charconv>
#include <iostream>

#include <Poco/Util/Application.h>

#include "auth/token_minter.h"
#include "cli/commands.h"

namespace hubflow::core {

int command_token(const std::vector<std::pair<std::string, std::string>>& options) {
    using App = Poco::Util::Application;
    signalr::MintOptions mint;
    mint.now = std::chrono::system_clock::now();
    bool alg_given = false;
    for (const auto& [name, value] : options) {
        if (name == "secret")
            mint.secret = value;
        else if (name == "key")
            mint.key_pem_file = value;
        else if (name == "alg") {
            mint.alg = value;
            alg_given = true;
        } else if (name == "sub")
            mint.sub = value;
        else if (name == "scope")
            mint.scopes.push_back(value);
        else if (name == "aud")
            mint.aud = value;
        else if (name == "iss")
            mint.iss = value;
        else if (name == "kid")
            mint.kid = value;
        else if (name == "ttl") {
            auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), mint.ttl_s);
            if (ec != std::errc() || ptr != value.data() + value.size()) {
                std::cerr << "hubflow: --ttl must be a whole number of seconds\n";
                return App::EXIT_USAGE;
            }
        }
    }
    if (mint.secret.empty() == mint.key_pem_file.empty()) {
        std::cerr << "hubflow: token needs exactly one of --secret S or --key PEM\n";
        return App::EXIT_USAGE;
    }
    if (mint.sub.empty()) {
        std::cerr << "hubflow: token needs --sub (the KS user id)\n";
        return App::EXIT_USAGE;
    }
    if (!alg_given) mint.alg = mint.secret.empty() ? "RS256" : "HS256";
    if (mint.scopes.empty()) mint.scopes.push_back("user_api.full_access");
    try {
        std::cout << signalr::mint_token(mint) << "\n";
    } catch (const std::exception& e) {
        std::cerr << "hubflow: cannot mint the token: " << e.what() << "\n";
        return App::EXIT_USAGE;
    }
    return App::EXIT_OK;
}

}  // namespace hubflow::core
