// Man pages and shell completion generated from a CLI11 command tree, so
// they cannot drift from the commands: `ferry completion bash|zsh`, and
// `ferry --man` / `ferryd --man` (the build writes ferry.1 and ferryd.1
// with them; the package installs them).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace ferry::cli_doc {

struct man_info {
  std::string name;     ///< "ferry"
  std::string summary;  ///< one line for NAME
  std::string version;  ///< "0.1.0"
  /// Extra sections after OPTIONS/COMMANDS: {"EXIT STATUS", "text"}, ...
  /// Text is plain; a line starting with "  " is kept as a literal line.
  std::vector<std::pair<std::string, std::string>> sections;
};

/// A man page (section 1, troff -man) for `app` and every subcommand.
[[nodiscard]] std::string man_page(const CLI::App& app, const man_info& info);

/// A bash completion script for `name`: subcommands by position, each
/// command's options, and the global options anywhere.
[[nodiscard]] std::string bash_completion(const CLI::App& app, const std::string& name);

/// The same for zsh (#compdef), with descriptions.
[[nodiscard]] std::string zsh_completion(const CLI::App& app, const std::string& name);

}  // namespace ferry::cli_doc
