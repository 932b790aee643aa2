// The subcommands of `reel`. Each registers its options on the app and returns the function
// that runs it after parsing; that function returns the process exit code.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "base/expected.hpp"
#include "cli/config.hpp"

namespace reel::cli {

using Command = std::function<int()>;

Command add_generate(CLI::App& app, const Config& cfg);
Command add_models(CLI::App& app, const Config& cfg);
Command add_bench(CLI::App& app, const Config& cfg);
Command add_world(CLI::App& app, const Config& cfg);
Command add_train(CLI::App& app, const Config& cfg);
Command add_eval(CLI::App& app, const Config& cfg);
Command add_warm(CLI::App& app, const Config& cfg);
Command add_node(CLI::App& app, const Config& cfg);
Command add_serve(CLI::App& app, const Config& cfg);
// Clients of `reel serve` (cli/client_cmd.cpp).
Command add_submit(CLI::App& app, const Config& cfg);
Command add_status(CLI::App& app, const Config& cfg);
Command add_ls(CLI::App& app, const Config& cfg);
Command add_wait(CLI::App& app, const Config& cfg);
Command add_cancel(CLI::App& app, const Config& cfg);
Command add_fetch(CLI::App& app, const Config& cfg);

// Exit codes: 0 success, 1 a failure while running, 2 bad input (usage, arguments, unreadable
// or invalid files).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Prints "reel: error: <message>" and returns the exit code for the error's kind. The message is
// cut before a LibTorch backtrace and after 1,000 bytes (one_error_line).
int report(const Error& error);

// Sets LibTorch's intra-op threads: 0 means all cores. Negative counts and counts above
// max_threads() are usage errors (a typo such as 1000000 would otherwise start that many threads).
[[nodiscard]] Status set_threads(int threads);
int max_threads();  // 8 per core, at least 64

// A file the command will write: the name must end in `extension` ("" = any), its folder must
// exist (a missing last folder is created when its parent exists) and be writable, and the path
// must not be a folder. `what` names it in the message ("output", "--json", ...).
[[nodiscard]] Status check_output(const std::string& path, const std::string& extension, const char* what);

}  // namespace reel::cli
