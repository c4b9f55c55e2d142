#include "ferry/runtime/errors.h"

namespace ferry::runtime {

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ferry.runtime"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok:
        return "success";
      case errc::handler_exception:
        return "exception in handler";
      case errc::invalid_payload:
        return "invalid payload";
      case errc::no_handler:
        return "no handler for this topic";
      case errc::stopped:
        return "the worker was stopped";
    }
    return "unknown ferry.runtime error " + std::to_string(ev);
  }
};

thread_local detail::error_note t_note;

std::error_code note(std::error_code ec, error_class cls, std::string_view message) {
  t_note.ec = ec;
  t_note.cls = cls;
  t_note.message.assign(message.substr(0, kMaxErrorMessageBytes));
  return ec;
}

}  // namespace

const std::error_category& runtime_category() noexcept {
  static const category c;
  return c;
}

std::error_code permanent(std::error_code ec, std::string_view message) {
  return note(ec, error_class::permanent, message);
}

std::error_code retriable(std::error_code ec, std::string_view message) {
  return note(ec, error_class::retriable, message);
}

std::error_code invalid_payload(std::string_view message) {
  return note(errc::invalid_payload, error_class::invalid_payload, message);
}

namespace detail {

error_note take_note() noexcept {
  error_note n;
  std::swap(n, t_note);
  return n;
}

void clear_note() noexcept {
  t_note = {};
}

}  // namespace detail

}  // namespace ferry::runtime
