#include "cli/commands.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <thread>

#include <Poco/Util/Application.h>

#include "admin/admin_server.h"
#include "config/pipeline.h"
#include "plugins/plugin_loader.h"
#include "runtime/runtime.h"
#include "service/systemd_notify.h"

namespace hubflow::core {

namespace fs = std::filesystem;
using App = Poco::Util::Application;

namespace {

// Loads plugins from the standard places plus those a pipeline names (relative to the pipeline's folder).
void load_plugins(PluginLoader& loader, const CliOptions& options, const std::vector<std::string>& pipeline_paths,
                  const std::string& pipeline_file) {
    for (const auto& dir : default_plugin_directories(options.plugin_dirs))
        loader.load_directory(dir);
    for (const auto& p : pipeline_paths) {
        fs::path path(p);
        if (path.is_relative()) path = fs::path(pipeline_file).parent_path() / path;
        if (path.extension() == ".so")
            loader.load_file(path);
        else
            loader.load_directory(path, /*must_exist=*/true);
    }
    for (const auto& refusal : loader.refusals())
        std::cerr << "hubflow: warning: " << refusal.reason << "\n";
}

struct LoadedPipeline {
    ComponentRegistry registry;
    std::unique_ptr<PluginLoader> loader;
    PipelineSpec spec;
    int exit_code = App::EXIT_OK;
};

// Reads, loads plugins for, and validates a pipeline file; on failure prints every problem and sets the code.
void load_pipeline(const std::string& file, const CliOptions& options, LoadedPipeline& out) {
    out.loader = std::make_unique<PluginLoader>(out.registry);
    Diagnostics diags(file);
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) {
        std::cerr << "hubflow: " << file << ": no such file\n";
        out.exit_code = App::EXIT_NOINPUT;
        return;
    }
    auto doc = read_pipeline_document(file, process_environment(), diags);
    if (!doc) {
        std::cerr << diags.to_string();
        out.exit_code = App::EXIT_DATAERR;
        return;
    }
    load_plugins(*out.loader, options, plugin_paths_of(*doc), file);
    out.spec = validate_pipeline(*doc, out.registry, diags);
    if (!diags.empty()) {
        std::cerr << diags.to_string();
        std::cerr << "hubflow: " << file << ": " << diags.items().size() << " problem"
                  << (diags.items().size() == 1 ? "" : "s") << " found\n";
        out.exit_code = App::EXIT_DATAERR;
    }
}

}  // namespace

int command_validate(const std::string& file, const CliOptions& options) {
    LoadedPipeline p;
    load_pipeline(file, options, p);
    if (p.exit_code != App::EXIT_OK) return p.exit_code;
    std::size_t counts[3] = {0, 0, 0};
    for (const auto& n : p.spec.nodes)
        ++counts[static_cast<int>(n.kind)];
    std::cout << file << ": valid (" << counts[0] << " sources, " << counts[1] << " filters, " << counts[2]
              << " sinks)\n";
    return App::EXIT_OK;
}

int command_graph(const std::string& file, const CliOptions& options) {
    LoadedPipeline p;
    load_pipeline(file, options, p);
    if (p.exit_code != App::EXIT_OK) return p.exit_code;
    std::cout << to_dot(p.spec);
    return App::EXIT_OK;
}

int command_run(const std::string& file, const CliOptions& options) {
    LoadedPipeline p;
    load_pipeline(file, options, p);
    if (p.exit_code != App::EXIT_OK) return p.exit_code;

    LogSink log(std::cerr, options.log_level);
    Runtime runtime(p.spec, p.registry, log);
    if (!runtime.build()) {
        log.write(LogLevel::error, "", "the pipeline could not be built; nothing was started");
        return App::EXIT_SOFTWARE;
    }

    // Set once the graph runs under a service manager: a reload tells it when it begins and ends.
    std::atomic<SystemdNotifier*> notifier{nullptr};

    // A reload reads the file again and validates it against the plugins already loaded; a valid one is applied
    // as a diff (Runtime::reload). Every problem is logged, and returned to the admin server's caller.
    const auto reload_file_now = [&]() -> ReloadReport {
        ReloadReport report;
        Diagnostics diags(file);
        auto doc = read_pipeline_document(file, process_environment(), diags);
        PipelineSpec next;
        if (doc) next = validate_pipeline(*doc, p.registry, diags);
        if (!doc || !diags.empty()) {
            for (const auto& d : diags.items())
                report.problems.push_back(d.to_string());
            log.write(LogLevel::error, "", "reload refused: " + report.summary());
            return report;
        }
        report = runtime.reload(next);
        if (report.outcome != ReloadReport::Outcome::applied)
            log.write(LogLevel::error, "", "reload refused: " + report.summary());
        return report;
    };
    const auto reload_file = [&]() -> ReloadReport {
        SystemdNotifier* systemd = notifier.load();
        if (systemd) systemd->reloading();
        ReloadReport report = reload_file_now();
        if (systemd)
            systemd->reloaded(report.outcome == ReloadReport::Outcome::applied ? "reloaded" : "reload refused");
        return report;
    };

    // SIGINT/SIGTERM/SIGHUP are blocked in every thread (see main); this one takes them. The first SIGINT or
    // SIGTERM starts the drain, a second one exits at once; SIGHUP reloads the file, on a thread of its own so
    // that a stop is still heard during a long drain.
    std::vector<std::thread> reloads;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    // The signals arrive on a descriptor, next to one that ends the thread the moment the run is over (a
    // timed wait would hold every exit up by its timeout).
    const int signal_fd = ::signalfd(-1, &set, SFD_CLOEXEC);
    const int wake_fd = ::eventfd(0, EFD_CLOEXEC);
    if (signal_fd < 0 || wake_fd < 0) {
        log.write(LogLevel::error, "", std::string("cannot watch for signals: ") + std::strerror(errno));
        for (int fd : {signal_fd, wake_fd})
            if (fd >= 0) ::close(fd);
        return App::EXIT_OSERR;
    }
    std::thread signals([&] {
        int received = 0;
        for (;;) {
            pollfd fds[2] = {{signal_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) continue;  // EINTR
            if (fds[1].revents != 0) return;
            signalfd_siginfo info{};
            if (::read(signal_fd, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
            const int sig = static_cast<int>(info.ssi_signo);
            if (sig == SIGHUP) {
                log.write(LogLevel::info, "", "SIGHUP: reloading " + file);
                reloads.emplace_back([&] { reload_file(); });
                continue;
            }
            if (++received == 1) {
                log.write(LogLevel::info, "",
                          std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ": draining (again to exit at once)");
                runtime.request_stop();
            } else {
                log.write(LogLevel::warn, "", "second signal: exiting without draining");
                std::_Exit(130);
            }
        }
    });
    const auto stop_signals = [&] {
        const std::uint64_t one = 1;
        if (::write(wake_fd, &one, sizeof one) < 0) std::_Exit(70);  // cannot happen: the counter is far from full
        signals.join();
        ::close(signal_fd);
        ::close(wake_fd);
        for (auto& r : reloads)
            r.join();
    };

    // The admin server starts before the graph, so /readyz says "starting" rather than refusing connections.
    std::unique_ptr<AdminServer> admin;
    if (p.spec.admin.enabled()) {
        admin = std::make_unique<AdminServer>(p.spec.admin, runtime, log);
        admin->set_reload(reload_file);
        try {
            admin->start();
        } catch (const std::exception& e) {
            log.write(LogLevel::error, "", std::string(e.what()) + "; nothing was started");
            stop_signals();
            return App::EXIT_SOFTWARE;
        }
    }

    log.write(LogLevel::info, "", "running " + file + " (" + std::to_string(p.spec.nodes.size()) + " nodes)");
    SystemdNotifier systemd(runtime, log);  // READY=1 once running, under systemd only
    if (systemd.active()) notifier = &systemd;
    RunResult result = runtime.run();
    if (admin) admin->stop();
    stop_signals();
    if (!result.unfinished.empty()) {
        // Threads of unfinished nodes still use the runtime; leave without destroying anything.
        std::cerr.flush();
        std::_Exit(1);
    }
    if (!result.failed_nodes.empty()) {
        std::string names;
        for (const auto& n : result.failed_nodes)
            names += (names.empty() ? "" : ", ") + n;
        log.write(LogLevel::error, "", "finished with failed nodes: " + names);
        return 1;
    }
    log.write(LogLevel::info, "", "finished");
    return App::EXIT_OK;
}

int command_plugins(const CliOptions& options) {
    ComponentRegistry registry;
    PluginLoader loader(registry);
    load_plugins(loader, options, {}, "");
    if (!options.describe.empty()) {
        const ComponentEntry* entry = registry.find(options.describe);
        if (!entry) {
            std::cerr << "hubflow: no component type '" << options.describe << "'; see 'hubflow plugins'\n";
            return App::EXIT_USAGE;
        }
        const auto& d = entry->description;
        std::cout << d.type << " (" << kind_name(d.kind) << ") — " << d.summary << "\n"
                  << "plugin " << entry->plugin_name << " " << entry->plugin_version << ", " << entry->plugin_file
                  << "\n\nkeys:\n";
        std::function<void(const std::vector<ConfigField>&, const std::string&)> print =
            [&](const std::vector<ConfigField>& fields, const std::string& prefix) {
                for (const auto& f : fields) {
                    std::string name = prefix + f.name;
                    std::cout << "  " << std::left << std::setw(24) << name << " " << std::setw(16)
                              << field_type_name(f.type)
                              << (f.required               ? " required"
                                  : f.default_json.empty() ? ""
                                                           : " default " + f.default_json)
                              << "\n      " << f.doc << "\n";
                    if (f.type == FieldType::object) print(f.fields, name + ".");
                }
            };
        print(d.fields, "");
        std::cout << "  " << std::left << std::setw(24) << "type"
                  << " string           required\n"
                  << "      the component type, '" << d.type << "'\n";
        if (d.kind != ComponentKind::source)
            std::cout
                << "  " << std::setw(24) << "inputs"
                << " list of strings  required\n"
                << "      nodes (or node.output) this node reads from\n"
                << "  " << std::setw(24) << "buffer.type"
                << " string           default \"memory\"\n"
                << "      memory, or disk: the input is kept in segment files that survive kill -9 and power loss\n"
                << "  " << std::setw(24) << "buffer.max_events"
                << " integer          default 10000\n"
                << "      memory: capacity of the input queue, in events\n"
                << "  " << std::setw(24) << "buffer.max_bytes"
                << " integer          default 268435456\n"
                << "      disk: bytes of segment files before when_full applies (at least 1 MiB)\n"
                << "  " << std::setw(24) << "buffer.fsync"
                << " string           default \"batch\"\n"
                << "      disk: batch (each commit group synced at once) or interval (fsync_interval_ms)\n"
                << "  " << std::setw(24) << "buffer.when_full"
                << " string           default \"block\"\n"
                << "      block (backpressure) or drop_newest (dropped events are counted)\n";
        return App::EXIT_OK;
    }
    std::cout << std::left << std::setw(14) << "TYPE" << std::setw(8) << "KIND" << std::setw(10) << "VERSION"
              << std::setw(36) << "PLUGIN"
              << "DESCRIPTION\n";
    for (const ComponentEntry* e : registry.all())
        std::cout << std::setw(14) << e->description.type << std::setw(8) << kind_name(e->description.kind)
                  << std::setw(10) << e->plugin_version << std::setw(36) << fs::path(e->plugin_file).filename().string()
                  << e->description.summary << "\n";
    return App::EXIT_OK;
}

}  // namespace hubflow::core
