// hubflow's command line. Subcommands: run, validate, graph, plugins, token, top. Exit codes are documented in the
// README and in --help; they are the sysexits values Poco's Application names.

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <Poco/Util/Application.h>
#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>
#include <Poco/Util/OptionSet.h>

#include "cli/commands.h"
#include "hubflow/version.h"

namespace hubflow::core {
namespace {

using Poco::Util::Application;
using Poco::Util::Option;
using Poco::Util::OptionSet;

class HubflowApp final : public Application {
public:
    HubflowApp() { setUnixOptions(true); }

protected:
    void defineOptions(OptionSet& options) override {
        options.addOption(Option("help", "h", "print this help and exit")
                              .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_help)));
        options.addOption(Option("version", "", "print the version and exit")
                              .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_version)));
        options.addOption(Option("plugin-dir", "", "also load plugins from DIR (repeatable)")
                              .argument("DIR")
                              .repeatable(true)
                              .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_plugin_dir)));
        options.addOption(Option("describe", "", "with 'plugins': print the config schema of component TYPE")
                              .argument("TYPE")
                              .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_describe)));
        auto token_option = [&](const char* name, const char* doc, const char* arg) {
            options.addOption(
                Option(name, "", doc)
                    .argument(arg)
                    .repeatable(std::string(name) == "scope")
                    .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_token_option)));
        };
        token_option("secret", "with 'token': HS256 secret", "SECRET");
        token_option("key", "with 'token': PEM private key file (RS256 or ES256)", "PEM");
        token_option("alg", "with 'token': HS256 (default with --secret), RS256 (default with --key) or ES256", "ALG");
        token_option("sub", "with 'token': the subject (the KS user id)", "SUB");
        token_option("scope", "with 'token': a scope (repeatable; default user_api.full_access)", "SCOPE");
        token_option("aud", "with 'token': the audience", "AUD");
        token_option("iss", "with 'token': the issuer", "ISS");
        token_option("kid", "with 'token': the key id written in the header", "KID");
        token_option("ttl", "with 'token': lifetime in seconds (default 3600; negative for an expired token)",
                     "SECONDS");
        options.addOption(Option("admin", "", "with 'top': the admin server's URL (default http://127.0.0.1:9610)")
                              .argument("URL")
                              .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_top_admin)));
        options.addOption(
            Option("token-env", "", "with 'top': the environment variable holding the admin bearer token")
                .argument("VAR")
                .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_top_token_env)));
        options.addOption(Option("once", "", "with 'top': print one table (rates over one second) and exit")
                              .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_top_once)));
        options.addOption(Option("log-level", "", "debug, info (default), warn or error")
                              .argument("LEVEL")
                              .callback(Poco::Util::OptionCallback<HubflowApp>(this, &HubflowApp::handle_level)));
    }

    int main(const ArgVec& args) override {
        if (done_) return exit_code_;
        if (args.empty()) {
            std::cerr << "hubflow: no command given; try 'hubflow --help'\n";
            return EXIT_USAGE;
        }
        const std::string& command = args[0];
        ArgVec rest(args.begin() + 1, args.end());
        if (command == "token") {
            if (!rest.empty()) return usage_error("'token' takes options only; see --help");
            return command_token(options_.token);
        }
        if (!options_.token.empty()) return usage_error("token options go with the 'token' command");
        if (command == "top") {
            if (!rest.empty()) return usage_error("'top' takes options only: --admin URL, --token-env VAR, --once");
            return command_top(options_);
        }
        if (!options_.top_admin.empty() || !options_.top_token_env.empty() || options_.top_once)
            return usage_error("--admin, --token-env and --once go with the 'top' command");
        if (command == "plugins") {
            if (!rest.empty()) return usage_error("'plugins' takes no arguments besides --describe TYPE");
            return command_plugins(options_);
        }
        if (!options_.describe.empty()) return usage_error("--describe goes with the 'plugins' command");
        if (command == "run" || command == "validate" || command == "graph") {
            if (rest.size() != 1) return usage_error("'" + command + "' takes one pipeline file");
            if (command == "run") return command_run(rest[0], options_);
            if (command == "validate") return command_validate(rest[0], options_);
            return command_graph(rest[0], options_);
        }
        return usage_error("unknown command '" + command + "'; commands: run, validate, graph, plugins, token, top");
    }

private:
    int usage_error(const std::string& message) {
        std::cerr << "hubflow: " << message << "\n";
        return EXIT_USAGE;
    }
    void handle_help(const std::string&, const std::string&) {
        Poco::Util::HelpFormatter help(options());
        help.setCommand("hubflow");
        help.setUsage("COMMAND [OPTIONS] [FILE]");
        help.setHeader(
            "Runs event pipelines described in JSON files.\n\n"
            "Commands:\n"
            "  run FILE        run the pipeline until its sources end or SIGINT/SIGTERM, then drain\n"
            "  validate FILE   check the pipeline file and report every problem found\n"
            "  graph FILE      print the pipeline as a Graphviz DOT graph\n"
            "  plugins         list every component: type, kind, plugin file, version, description\n"
            "  token           print a development JWT for the signalr_hub sink (never for production keys)\n"
            "  top             a live table of a running instance, from its admin server\n\n"
            "Options:");
        help.setFooter(
            "Exit codes: 0 success; 1 the run ended with a failed node or a drain that outlasted the grace "
            "period; 64 usage error; 65 invalid pipeline file; 66 pipeline file unreadable; 70 internal error.");
        help.format(std::cout);
        finish_early(EXIT_OK);
    }
    void handle_version(const std::string&, const std::string&) {
        std::cout << "hubflow " << HUBFLOW_VERSION_STRING << " (SDK " << HUBFLOW_SDK_VERSION_MAJOR << "."
                  << HUBFLOW_SDK_VERSION_MINOR << ")\n";
        finish_early(EXIT_OK);
    }
    void handle_plugin_dir(const std::string&, const std::string& value) { options_.plugin_dirs.push_back(value); }
    void handle_describe(const std::string&, const std::string& value) { options_.describe = value; }
    void handle_top_admin(const std::string&, const std::string& value) { options_.top_admin = value; }
    void handle_top_token_env(const std::string&, const std::string& value) { options_.top_token_env = value; }
    void handle_top_once(const std::string&, const std::string&) { options_.top_once = true; }
    void handle_token_option(const std::string& name, const std::string& value) {
        options_.token.emplace_back(name, value);
    }
    void handle_level(const std::string&, const std::string& value) {
        if (!parse_level(value, options_.log_level)) {
            std::cerr << "hubflow: --log-level must be debug, info, warn or error\n";
            finish_early(EXIT_USAGE);
        }
    }
    void finish_early(int code) {
        done_ = true;
        exit_code_ = code;
        stopOptionsProcessing();
    }

    CliOptions options_;
    bool done_ = false;
    int exit_code_ = 0;
};

}  // namespace
}  // namespace hubflow::core

int main(int argc, char** argv) {
    // Signals are taken by one thread with sigwait (see command_run); every thread inherits this mask.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    hubflow::core::HubflowApp app;
    try {
        app.init(argc, argv);
    } catch (const Poco::Exception& e) {
        std::cerr << "hubflow: " << e.displayText() << "; try 'hubflow --help'\n";
        return Poco::Util::Application::EXIT_USAGE;
    }
    try {
        return app.run();
    } catch (const std::exception& e) {
        std::cerr << "hubflow: internal error: " << e.what() << "\n";
        return Poco::Util::Application::EXIT_SOFTWARE;
    }
}
