// reel: long text-to-video generation with video diffusion transformers.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include <ATen/Parallel.h>

#include "base/allocator.hpp"
#include "cli/commands.hpp"
#include "cli/error_line.hpp"

namespace reel::cli {

int report(const Error& error) {
  std::fprintf(stderr, "reel: error: %s\n", one_error_line(error.message).c_str());
  switch (error.code) {
    case Errc::invalid_argument:
    case Errc::not_found:
    case Errc::corrupt_data:
    case Errc::unsupported:
      return kExitUsage;
    case Errc::io_error:
    case Errc::internal:
    case Errc::cancelled:
      return kExitFailure;
  }
  return kExitFailure;
}

Status check_output(const std::string& path, const std::string& extension, const char* what) {
  namespace fs = std::filesystem;
  auto usage = [](const std::string& m) { return make_error(Errc::invalid_argument, m); };
  if (path.empty()) return usage(std::string(what) + " path is empty");
  fs::path p(path);
  if (!extension.empty() && p.extension() != extension)
    return usage(std::string(what) + " '" + path + "' must end in " + extension);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    // Create the folder for a default output location only when its parent exists.
    if (!fs::is_directory(dir.parent_path().empty() ? fs::path(".") : dir.parent_path(), ec) ||
        !fs::create_directory(dir, ec))
      return usage(std::string(what) + " folder '" + dir.string() + "' does not exist");
  }
  if (::access(dir.c_str(), W_OK) != 0) return usage(std::string(what) + " folder '" + dir.string() + "' is not writable");
  if (fs::is_directory(p, ec)) return usage(std::string(what) + " '" + path + "' is a folder");
  return {};
}

int max_threads() { return std::max(64, 8 * static_cast<int>(std::thread::hardware_concurrency())); }

Status set_threads(int threads) {
  if (threads < 0) return make_error(Errc::invalid_argument, "--threads must be >= 0 (0 = all cores), got " + std::to_string(threads));
  if (threads > max_threads())
    return make_error(Errc::invalid_argument, "--threads " + std::to_string(threads) + " is more than " +
                                                  std::to_string(max_threads()) + " (8 per core on this machine)");
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return {};
}

}  // namespace reel::cli

int main(int argc, char** argv) {
  using namespace reel::cli;
  reel::keep_freed_memory();
  auto cfg = load_config(config_path_from(argc, argv));
  if (!cfg) return report(cfg.error());

  CLI::App app{"reel: long text-to-video generation with video diffusion transformers"};
  app.set_version_flag("--version", "reel 0.1.0");
  std::string config_file = cfg->path;
  app.add_option("--config", config_file, "configuration file (YAML); default configs/default.yaml")
      ->envname("REEL_CONFIG");
  app.require_subcommand(1);

  std::map<CLI::App*, Command> commands;
  auto add = [&](Command (*adder)(CLI::App&, const Config&)) {
    size_t before = app.get_subcommands({}).size();
    Command run = adder(app, *cfg);
    commands[app.get_subcommands({})[before]] = std::move(run);
  };
  add(add_generate);
  add(add_models);
  add(add_bench);
  add(add_world);
  add(add_train);
  add(add_eval);
  add(add_warm);
  add(add_node);
  add(add_serve);
  add(add_submit);
  add(add_status);
  add(add_ls);
  add(add_wait);
  add(add_cancel);
  add(add_fetch);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string message = e.what();
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && app.get_subcommands().empty()) {
      // No command was recognised: name what was given instead of "A subcommand is required".
      message = "a command is required";
      for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--config") {
          ++i;
          continue;
        }
        if (arg.rfind("--config=", 0) == 0) continue;
        message = (arg[0] == '-' ? "unknown option '" : "unknown command '") + arg + "'";
        break;
      }
    }
    std::fprintf(stderr, "reel: error: %s (see 'reel --help')\n", one_error_line(message).c_str());
    return kExitUsage;
  }
  for (auto* sub : app.get_subcommands()) {
    auto it = commands.find(sub);
    if (it == commands.end()) continue;
    const int code = it->second();
    // Output that did not reach standard output (a full disk, a closed pipe) is a failure, not a
    // silent success: flush it here, where the error can still be reported.
    errno = 0;
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
      std::fprintf(stderr, "reel: error: writing standard output: %s\n", std::strerror(errno ? errno : EIO));
      return code == 0 ? kExitFailure : code;
    }
    return code;
  }
  return kExitUsage;
}
