#include "models/detail/flat_yaml.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

namespace reel::models::detail {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// Removes a comment: '#' at the start or after whitespace, outside quotes.
std::string strip_comment(const std::string& line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return line.substr(0, i);
    }
  }
  return line;
}

}  // namespace

Expected<std::map<std::string, std::string>> parse_flat_yaml(const std::string& text, const std::string& source) {
  std::map<std::string, std::string> out;
  // Open mappings: (indentation of their keys, dotted path).
  std::vector<std::pair<int, std::string>> stack;
  int pending_indent = -1;  // a "key:" with no value opens a mapping whose keys must be deeper
  std::string pending_path;
  std::istringstream in(text);
  std::string raw;
  int number = 0;
  auto fail = [&](const std::string& why) {
    return make_error(Errc::invalid_argument, source + ":" + std::to_string(number) + ": " + why);
  };
  while (std::getline(in, raw)) {
    ++number;
    if (const auto first = raw.find_first_not_of(" \t");
        first != std::string::npos && raw.substr(0, first).find('\t') != std::string::npos)
      return fail("tabs are not allowed for indentation");
    std::string line = strip_comment(raw);
    if (trim(line).empty()) continue;
    if (trim(line) == "---") continue;
    const int indent = static_cast<int>(line.find_first_not_of(' '));
    line = trim(line);
    if (line[0] == '-') return fail("lists of items are not supported; write an inline list [a, b]");
    if (line[0] == '&' || line[0] == '*' || line[0] == '{' || line[0] == '|' || line[0] == '>')
      return fail("only 'key: value' mappings are supported");

    if (pending_indent >= 0) {
      if (indent <= pending_indent) {
        out[pending_path] = "";  // "key:" with nothing under it is a null
      } else {
        stack.emplace_back(indent, pending_path);
      }
      pending_indent = -1;
    }
    while (!stack.empty() && indent < stack.back().first) stack.pop_back();
    if (!stack.empty() && indent != stack.back().first) return fail("indentation does not match any open mapping");
    if (stack.empty() && indent != 0) return fail("indentation does not match any open mapping");

    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return fail("expected 'key: value'");
    if (colon + 1 < line.size() && line[colon + 1] != ' ') return fail("expected a space after ':'");
    const std::string key = trim(line.substr(0, colon));
    for (char c : key)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
        return fail("key '" + key + "' has characters other than letters, digits, '_' and '-'");
    std::string value = trim(line.substr(colon + 1));
    const std::string path = stack.empty() ? key : stack.back().second + "." + key;
    if (out.count(path)) return fail("duplicate key '" + path + "'");
    for (const auto& [k, v] : out)
      if (k.rfind(path + ".", 0) == 0) return fail("duplicate key '" + path + "'");

    if (value.empty()) {
      pending_indent = indent;
      pending_path = path;
      continue;
    }
    if (value[0] == '"' || value[0] == '\'') {
      if (value.size() < 2 || value.back() != value[0]) return fail("unterminated quoted value");
      value = value.substr(1, value.size() - 2);
    } else if (value[0] == '[') {
      if (value.back() != ']') return fail("unterminated inline list");
    } else if (value[0] == '{' || value[0] == '&' || value[0] == '*' || value[0] == '|' || value[0] == '>') {
      return fail("only scalars and inline lists are supported as values");
    } else if (value == "null" || value == "~") {
      value.clear();
    }
    out[path] = value;
  }
  if (pending_indent >= 0) out[pending_path] = "";
  return out;
}

Expected<std::map<std::string, std::string>> read_flat_yaml(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return make_error(Errc::not_found, "cannot open config '" + path + "'");
  if (!std::filesystem::is_regular_file(path, ec))
    return make_error(Errc::invalid_argument, "config '" + path + "' is not a regular file");
  std::ifstream in(path);
  if (!in) return make_error(Errc::not_found, "cannot open config '" + path + "'");
  std::ostringstream os;
  os << in.rdbuf();
  auto keys = parse_flat_yaml(os.str(), path);
  if (keys && keys->empty()) return make_error(Errc::invalid_argument, "config '" + path + "' has no settings");
  return keys;
}

}  // namespace reel::models::detail
