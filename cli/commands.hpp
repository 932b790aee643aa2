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

// Exit codes: 0 success, 1 a failure while running, 2 bad input (usage, arguments, unreadable
// or invalid files).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// Prints "reel: error: <message>" and returns the exit code for the error's kind.
int report(const Error& error);

// Sets LibTorch's intra-op threads: `threads` <= 0 means all cores.
void set_threads(int threads);

}  // namespace reel::cli
