// reel models: the model zoo.
#include <cstdio>

#include "cli/commands.hpp"
#include "models/zoo.hpp"

namespace reel::cli {

namespace {

int run_models(const Config& cfg, bool vocab) {
  auto entries = models::list_zoo(cfg.zoo);
  std::printf("%-20s %10s  %s\n", "NAME", "SIZE", "DESCRIPTION");
  for (const auto& e : entries) {
    std::string size = e.bytes == 0 ? "built-in" : std::to_string((e.bytes + 512 * 1024) / (1024 * 1024)) + " MB";
    std::printf("%-20s %10s  %s\n", e.name.c_str(), size.c_str(), e.description.c_str());
  }
  std::printf("zoo folder: %s\n", cfg.zoo.c_str());
  if (vocab) {
    for (const auto& e : entries) {
      auto model = models::open_model(e.path.rfind("builtin:", 0) == 0 ? e.name : e.path, cfg.zoo);
      if (!model) {
        std::printf("\n%s: %s\n", e.name.c_str(), model.error().message.c_str());
        continue;
      }
      std::printf("\n%s knows %zu words:\n ", e.name.c_str(), model->text_encoder->tokenizer().words().size());
      for (const auto& w : model->text_encoder->tokenizer().words()) std::printf(" %s", w.c_str());
      std::printf("\n");
    }
  }
  return kExitOk;
}

}  // namespace

Command add_models(CLI::App& app, const Config& cfg) {
  auto vocab = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand("models", "list the model zoo");
  sub->add_flag("--vocab", *vocab, "also print each model's vocabulary");
  return [vocab, &cfg] { return run_models(cfg, *vocab); };
}

}  // namespace reel::cli
