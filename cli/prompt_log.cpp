#include "cli/prompt_log.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace reel::cli {
namespace {

Error at_line(const std::string& path, int line, const std::string& what) {
  return make_error(Errc::invalid_argument, path + ":" + std::to_string(line) + ": " + what);
}

Expected<LoggedRequest> from_json(const std::string& text, const std::string& path, int line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    return at_line(path, line, "not a JSON object");
  }
  if (!j.is_object()) return at_line(path, line, "not a JSON object");
  LoggedRequest r;
  r.line = line;
  if (!j.contains("prompt") || !j["prompt"].is_string()) return at_line(path, line, "no \"prompt\" string");
  r.prompt = j["prompt"].get<std::string>();
  if (j.contains("seed")) {
    if (!j["seed"].is_number_unsigned()) return at_line(path, line, "\"seed\" must be a non-negative integer");
    r.seed = j["seed"].get<uint64_t>();
  }
  if (j.contains("steps")) {
    if (!j["steps"].is_number_integer() || j["steps"].get<int64_t>() <= 0)
      return at_line(path, line, "\"steps\" must be a positive integer");
    r.steps = j["steps"].get<int>();
  }
  if (j.contains("guidance")) {
    if (!j["guidance"].is_number()) return at_line(path, line, "\"guidance\" must be a number");
    r.guidance = j["guidance"].get<double>();
  }
  return r;
}

// Splits one CSV record; false on an unterminated quote.
bool split_csv(const std::string& line, std::vector<std::string>& fields) {
  fields.clear();
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else if (c != '\r') {
      field += c;
    }
  }
  fields.push_back(std::move(field));
  return !quoted;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; }

}  // namespace

Expected<LogFormat> parse_log_format(const std::string& name, const std::string& path) {
  if (name == "txt") return LogFormat::txt;
  if (name == "jsonl") return LogFormat::jsonl;
  if (name == "csv") return LogFormat::csv;
  if (name == "auto") {
    auto ends = [&](const std::string& ext) {
      return path.size() >= ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0;
    };
    if (ends(".jsonl") || ends(".json")) return LogFormat::jsonl;
    if (ends(".csv")) return LogFormat::csv;
    return LogFormat::txt;
  }
  return make_error(Errc::invalid_argument, "--format must be txt, jsonl, csv or auto, got '" + name + "'");
}

Expected<std::vector<LoggedRequest>> read_prompt_log(const std::string& path, LogFormat format) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    return make_error(Errc::invalid_argument, path + " is not a regular file");
  std::ifstream in(path);
  if (!in) return make_error(Errc::not_found, "cannot read the log " + path);
  std::vector<LoggedRequest> out;
  std::string line;
  int number = 0;
  std::vector<std::string> header, fields;
  int prompt_col = -1, seed_col = -1, steps_col = -1, guidance_col = -1;
  while (std::getline(in, line)) {
    ++number;
    if (line.find('\0') != std::string::npos)
      return make_error(Errc::corrupt_data, path + ":" + std::to_string(number) + ": not text (a NUL byte)");
    if (blank(line)) continue;
    if (format == LogFormat::txt) {
      if (line[0] == '#') continue;
      size_t first = line.find_first_not_of(" \t");
      if (line[first] == '{') {
        auto r = from_json(line, path, number);
        if (!r.ok()) return r.error();
        out.push_back(std::move(*r));
      } else {
        size_t last = line.find_last_not_of(" \t\r");
        out.push_back(LoggedRequest{line.substr(first, last - first + 1), {}, {}, {}, number});
      }
    } else if (format == LogFormat::jsonl) {
      auto r = from_json(line, path, number);
      if (!r.ok()) return r.error();
      out.push_back(std::move(*r));
    } else {
      if (!split_csv(line, fields)) return at_line(path, number, "unterminated quote (records may not span lines)");
      if (header.empty()) {
        header = fields;
        for (int i = 0; i < static_cast<int>(header.size()); ++i) {
          const auto& h = header[static_cast<size_t>(i)];
          if (h == "prompt") prompt_col = i;
          if (h == "seed") seed_col = i;
          if (h == "steps") steps_col = i;
          if (h == "guidance") guidance_col = i;
        }
        if (prompt_col < 0) return at_line(path, number, "the CSV header has no \"prompt\" column");
        continue;
      }
      if (fields.size() != header.size()) {
        return at_line(path, number, std::to_string(fields.size()) + " fields, the header has " +
                                         std::to_string(header.size()));
      }
      LoggedRequest r;
      r.line = number;
      r.prompt = fields[static_cast<size_t>(prompt_col)];
      try {
        if (seed_col >= 0 && !blank(fields[static_cast<size_t>(seed_col)]))
          r.seed = std::stoull(fields[static_cast<size_t>(seed_col)]);
        if (steps_col >= 0 && !blank(fields[static_cast<size_t>(steps_col)]))
          r.steps = std::stoi(fields[static_cast<size_t>(steps_col)]);
        if (guidance_col >= 0 && !blank(fields[static_cast<size_t>(guidance_col)]))
          r.guidance = std::stod(fields[static_cast<size_t>(guidance_col)]);
      } catch (const std::exception&) {
        return at_line(path, number, "seed, steps and guidance must be numbers");
      }
      if (r.steps && *r.steps <= 0) return at_line(path, number, "steps must be positive");
      out.push_back(std::move(r));
    }
    if (blank(out.back().prompt)) return at_line(path, number, "empty prompt");
  }
  return out;
}

}  // namespace reel::cli
