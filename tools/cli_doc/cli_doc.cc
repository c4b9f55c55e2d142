#include "cli_doc.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <sstream>

namespace ferry::cli_doc {

namespace {

// Subcommands that are shown (CLI11 hides those with an empty group).
std::vector<const CLI::App*> commands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); });
}

// Options that are shown: named, not hidden, not --help.
std::vector<const CLI::Option*> named_options(const CLI::App& app) {
  return app.get_options([](const CLI::Option* o) {
    return o->nonpositional() && !o->get_group().empty() && o->get_name() != "--help";
  });
}

std::vector<const CLI::Option*> positionals(const CLI::App& app) {
  return app.get_options([](const CLI::Option* o) { return o->get_positional(); });
}

std::vector<std::string> option_words(const CLI::Option& o) {
  std::vector<std::string> w;
  for (const auto& s : o.get_snames()) w.push_back("-" + s);
  for (const auto& l : o.get_lnames()) w.push_back("--" + l);
  return w;
}

bool takes_value(const CLI::Option& o) {
  return o.get_expected_max() != 0;  // flags expect nothing
}

// troff: a backslash and a leading dot or quote must not be read as requests.
std::string roff(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else
      out += c;
  }
  if (!out.empty() && (out.front() == '.' || out.front() == '\'')) out.insert(0, "\\&");
  return out;
}

std::string usage_words(const CLI::App& a) {
  std::string s;
  for (const auto* p : positionals(a)) {
    const auto n = p->get_name(true);
    s += p->get_required() ? " " + n : " [" + n + "]";
  }
  if (!named_options(a).empty()) s += " [OPTIONS]";
  if (!commands(a).empty()) s += " COMMAND";
  return s;
}

void man_options(std::ostringstream& out, const CLI::App& a) {
  for (const auto* o : named_options(a)) {
    std::string words;
    for (const auto& w : option_words(*o)) words += (words.empty() ? "" : ", ") + w;
    if (takes_value(*o)) words += " " + (o->get_type_name().empty() ? "VALUE" : o->get_type_name());
    out << ".TP\n.B " << roff(words) << "\n" << roff(o->get_description());
    if (!o->get_envname().empty()) out << " (environment: " << roff(o->get_envname()) << ")";
    out << "\n";
  }
}

void man_commands(std::ostringstream& out, const CLI::App& a, const std::string& prefix) {
  for (const auto* c : commands(a)) {
    const auto path = prefix + " " + c->get_name();
    out << ".SS \"" << roff(path + usage_words(*c)) << "\"\n" << roff(c->get_description()) << "\n";
    for (const auto* p : positionals(*c))
      out << ".TP\n.I " << roff(p->get_name(true)) << "\n" << roff(p->get_description()) << "\n";
    man_options(out, *c);
    man_commands(out, *c, path);
  }
}

// Every command path below `a`, with the words completed there.
struct node {
  std::string path;  // " topics create" ("" for the top)
  std::vector<std::pair<std::string, std::string>> subcommands;  // name, description
  std::vector<std::string> options;
  std::vector<std::string> valued;  // options that take a value
};

void collect(const CLI::App& a, const std::string& path, std::vector<node>& out) {
  node n;
  n.path = path;
  for (const auto* c : commands(a)) n.subcommands.emplace_back(c->get_name(), c->get_description());
  for (const auto* o : named_options(a))
    for (const auto& w : option_words(*o)) {
      n.options.push_back(w);
      if (takes_value(*o)) n.valued.push_back(w);
    }
  out.push_back(n);
  for (const auto* c : commands(a)) collect(*c, path + " " + c->get_name(), out);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& w : v) s += (s.empty() ? "" : " ") + w;
  return s;
}

std::string ident(const std::string& name) {
  std::string s;
  for (char c : name) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s;
}

}  // namespace

std::string man_page(const CLI::App& app, const man_info& info) {
  std::ostringstream out;
  std::string upper;
  for (char c : info.name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  out << ".\\\" Generated from the command definitions by " << info.name
      << " --man; do not edit.\n";
  out << ".TH " << upper << " 1 \"\" \"" << roff(info.name + " " + info.version)
      << "\" \"User Commands\"\n";
  out << ".SH NAME\n" << roff(info.name) << " \\- " << roff(info.summary) << "\n";
  // One line: a line starting with a space would break it in two.
  const auto usage = usage_words(app);
  out << ".SH SYNOPSIS\n.B " << roff(info.name) << "\n"
      << roff(usage.empty() ? usage : usage.substr(1)) << "\n";
  out << ".SH DESCRIPTION\n" << roff(app.get_description()) << "\n";
  out << ".SH OPTIONS\n";
  man_options(out, app);
  if (!commands(app).empty()) {
    out << ".SH COMMANDS\n";
    man_commands(out, app, info.name);
  }
  for (const auto& [title, text] : info.sections) {
    out << ".SH " << roff(title) << "\n";
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("  ", 0) == 0)
        out << ".br\n" << roff(line.substr(2)) << "\n";
      else if (line.empty())
        out << ".PP\n";
      else
        out << roff(line) << "\n";
    }
  }
  return out.str();
}

std::string bash_completion(const CLI::App& app, const std::string& name) {
  std::vector<node> nodes;
  collect(app, "", nodes);
  const auto& top = nodes.front();
  std::ostringstream out;
  const auto fn = "_" + ident(name);
  out << "# bash completion for " << name << ", generated from its command definitions by `" << name
      << " completion bash`.\n";
  out << fn << "() {\n"
      << "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
      << "  local path=\"\" w i skip=0\n"
      << "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      << "    w=\"${COMP_WORDS[i]}\"\n"
      << "    if ((skip)); then skip=0; continue; fi\n"
      << "    case \"$w\" in\n";
  // Options that take a value swallow the next word.
  std::vector<std::string> all_valued;
  for (const auto& n : nodes) all_valued.insert(all_valued.end(), n.valued.begin(), n.valued.end());
  std::sort(all_valued.begin(), all_valued.end());
  all_valued.erase(std::unique(all_valued.begin(), all_valued.end()), all_valued.end());
  if (!all_valued.empty()) {
    std::string alts;
    for (const auto& v : all_valued) alts += (alts.empty() ? "" : "|") + v;
    out << "      " << alts << ") skip=1; continue ;;\n";
  }
  out << "      -*) continue ;;\n"
      << "    esac\n"
      << "    case \"$path $w\" in\n";
  std::string paths;
  for (const auto& n : nodes)
    if (!n.path.empty()) paths += (paths.empty() ? "" : "|") + std::string("\"") + n.path + "\"";
  if (!paths.empty()) out << "      " << paths << ") path=\"$path $w\" ;;\n";
  out << "    esac\n"
      << "  done\n"
      << "  case \"$prev\" in\n";
  if (!all_valued.empty()) {
    std::string alts;
    for (const auto& v : all_valued) alts += (alts.empty() ? "" : "|") + v;
    out << "    " << alts << ")\n"
        << "      case \"$prev\" in\n"
        << "        -o|--output) COMPREPLY=($(compgen -W \"table json\" -- \"$cur\")) ;;\n"
        << "        *) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
        << "      esac\n"
        << "      return ;;\n";
  }
  out << "  esac\n"
      << "  local words\n"
      << "  case \"$path\" in\n";
  for (const auto& n : nodes) {
    std::vector<std::string> words;
    for (const auto& [c, _] : n.subcommands) words.push_back(c);
    words.insert(words.end(), n.options.begin(), n.options.end());
    if (!n.path.empty()) words.insert(words.end(), top.options.begin(), top.options.end());
    words.emplace_back("--help");
    out << "    \"" << n.path << "\") words=\"" << join(words) << "\" ;;\n";
  }
  out << "  esac\n"
      << "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
      << "}\n"
      << "complete -o default -F " << fn << " " << name << "\n";
  return out.str();
}

std::string zsh_completion(const CLI::App& app, const std::string& name) {
  std::vector<node> nodes;
  collect(app, "", nodes);
  const auto& top = nodes.front();
  // 'NAME:DESCRIPTION' for _describe: a colon in the name is escaped, a
  // single quote closed and reopened.
  auto entry = [](const std::string& word, const std::string& description) {
    auto quoted = [](const std::string& s, bool colons) {
      std::string out;
      for (char c : s) {
        if (c == '\'')
          out += "'\\''";
        else if (colons && c == ':')
          out += "\\:";
        else
          out += c;
      }
      return out;
    };
    return "'" + quoted(word, true) + ":" + quoted(description, false) + "'";
  };
  std::vector<std::string> all_valued;
  for (const auto& n : nodes) all_valued.insert(all_valued.end(), n.valued.begin(), n.valued.end());
  std::sort(all_valued.begin(), all_valued.end());
  all_valued.erase(std::unique(all_valued.begin(), all_valued.end()), all_valued.end());
  std::string valued_alts, paths;
  for (const auto& v : all_valued) valued_alts += (valued_alts.empty() ? "" : "|") + v;
  for (const auto& n : nodes)
    if (!n.path.empty()) paths += (paths.empty() ? "" : "|") + std::string("\"") + n.path + "\"";
  std::ostringstream out;
  const auto fn = "_" + ident(name);
  out << "#compdef " << name << "\n"
      << "# zsh completion for " << name << ", generated from its command definitions by `" << name
      << " completion zsh`.\n"
      << fn << "() {\n"
      << "  local path_=\"\" w skip=0 i\n"
      << "  for ((i = 2; i < CURRENT; i++)); do\n"
      << "    w=\"${words[i]}\"\n"
      << "    if ((skip)); then skip=0; continue; fi\n"
      << "    case \"$w\" in\n";
  if (!valued_alts.empty()) out << "      (" << valued_alts << ") skip=1; continue ;;\n";
  out << "      (-*) continue ;;\n"
      << "    esac\n"
      << "    case \"$path_ $w\" in\n";
  if (!paths.empty()) out << "      (" << paths << ") path_=\"$path_ $w\" ;;\n";
  out << "    esac\n"
      << "  done\n";
  if (!valued_alts.empty())
    out << "  case \"${words[CURRENT-1]}\" in\n"
        << "    (-o|--output) compadd table json; return ;;\n"
        << "    (" << valued_alts << ") _files; return ;;\n"
        << "  esac\n";
  out << "  local -a cmds opts\n"
      << "  case \"$path_\" in\n";
  for (const auto& n : nodes) {
    out << "    (\"" << n.path << "\")\n      cmds=(";
    for (const auto& [c, d] : n.subcommands) out << " " << entry(c, d);
    out << " )\n      opts=(";
    for (const auto& o : n.options) out << " " << o;
    if (!n.path.empty())
      for (const auto& o : top.options) out << " " << o;
    out << " --help )\n      ;;\n";
  }
  out << "  esac\n"
      << "  (( ${#cmds} )) && _describe -t commands 'command' cmds\n"
      << "  compadd -- $opts\n"
      << "}\n"
      << fn << " \"$@\"\n";
  return out.str();
}

}  // namespace ferry::cli_doc
