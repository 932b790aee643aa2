// reel: long text-to-video generation with video diffusion transformers.
#include <cstdio>
#include <map>
#include <thread>

#include <ATen/Parallel.h>

#include "cli/commands.hpp"

namespace reel::cli {

int report(const Error& error) {
  std::fprintf(stderr, "reel: error: %s\n", error.message.c_str());
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

void set_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
}

}  // namespace reel::cli

int main(int argc, char** argv) {
  using namespace reel::cli;
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "reel: error: %s (see 'reel --help')\n", e.what());
    return kExitUsage;
  }
  for (auto* sub : app.get_subcommands()) {
    auto it = commands.find(sub);
    if (it != commands.end()) return it->second();
  }
  return kExitUsage;
}
