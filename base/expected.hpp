// Errors as values: reel::Expected<T> holds either a T or a reel::Error, and reel::Status is
// Expected<void>. Header-only, used by every module (it depends on the standard library only).
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace reel {

// What went wrong, coarse enough for callers to branch on. The CLI maps invalid_argument,
// not_found and unsupported to exit code 2 (bad input) and the rest to 1.
enum class Errc {
  invalid_argument,  // the caller passed something malformed or out of range
  not_found,         // a named file, model or tensor does not exist
  io_error,          // the OS refused a read or write
  corrupt_data,      // a file exists but its contents are invalid
  unsupported,       // valid input that this build cannot handle (dtype, codec, ...)
  internal,          // a library underneath failed (LibTorch, FFmpeg, ...)
  cancelled,         // work was stopped on request
};

[[nodiscard]] inline const char* errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return "invalid argument";
    case Errc::not_found: return "not found";
    case Errc::io_error: return "I/O error";
    case Errc::corrupt_data: return "corrupt data";
    case Errc::unsupported: return "unsupported";
    case Errc::internal: return "internal error";
    case Errc::cancelled: return "cancelled";
  }
  return "unknown";
}

struct Error {
  Errc code = Errc::internal;
  std::string message;
};

[[nodiscard]] inline Error make_error(Errc code, std::string message) {
  return Error{code, std::move(message)};
}

template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Expected(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  Expected(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit

  [[nodiscard]] bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  [[nodiscard]] const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Expected<void>;

// Deliberately drops a status; grep for it to find every place that does.
inline void ignore_status(const Status&) {}

}  // namespace reel

// Propagates an error from an expression returning Status or Expected<T>.
#define REEL_RETURN_IF_ERROR(expr)              \
  do {                                          \
    auto reel_status_ = (expr);                 \
    if (!reel_status_.ok()) return reel_status_.error(); \
  } while (0)
