#include "ferry/storage/mem_env.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <random>

namespace ferry::storage {

namespace {

struct inode {
  std::vector<std::byte> data;     // what reads see now
  std::vector<std::byte> durable;  // what survives a crash
};

struct dir_node {
  std::map<std::string, std::shared_ptr<inode>> files, durable_files;
  std::set<std::string> subdirs, durable_subdirs;
};

struct sync_fault {
  std::error_code ec;
  std::string filter;
  int remaining = -1;  // -1: forever
};

struct short_write_fault {
  std::size_t bytes;
  std::error_code ec;
  std::string filter;
};

std::string norm(const fs::path& p) {
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string parent_of(const std::string& key) {
  return fs::path(key).parent_path().string();
}
std::string name_of(const std::string& key) {
  return fs::path(key).filename().string();
}

std::error_code err(std::errc e) {
  return std::make_error_code(e);
}

}  // namespace

struct mem_env::state {
  mutable std::mutex mu;
  std::map<std::string, dir_node> dirs;
  std::uint64_t epoch = 0;
  std::uint64_t syncs = 0;
  std::vector<sync_fault> sync_faults;
  std::optional<std::uint64_t> capacity;
  std::optional<short_write_fault> short_write;

  std::uint64_t used() const {
    std::uint64_t total = 0;
    std::set<const inode*> seen;
    for (const auto& [_, d] : dirs)
      for (const auto& [__, f] : d.files)
        if (seen.insert(f.get()).second) total += f->data.size();
    return total;
  }

  // Returns the error to inject for a sync on `path`, consuming one-shot faults.
  std::error_code sync_fault_for(const std::string& path) {
    for (auto it = sync_faults.begin(); it != sync_faults.end(); ++it) {
      if (path.find(it->filter) == std::string::npos) continue;
      auto ec = it->ec;
      if (it->remaining > 0 && --it->remaining == 0) sync_faults.erase(it);
      return ec;
    }
    return {};
  }

  dir_node* find_dir(const std::string& key) {
    auto it = dirs.find(key);
    return it == dirs.end() ? nullptr : &it->second;
  }
};

namespace {

class mem_file final : public file {
 public:
  mem_file(std::shared_ptr<mem_env::state> s, std::shared_ptr<inode> node, std::string path,
           std::uint64_t epoch)
      : s_(std::move(s)), node_(std::move(node)), path_(std::move(path)), epoch_(epoch) {}

  result<std::size_t> read_at(std::uint64_t pos, std::span<std::byte> out) const override {
    std::lock_guard lock(s_->mu);
    if (epoch_ != s_->epoch) return err(std::errc::io_error);
    const auto& d = node_->data;
    if (pos >= d.size()) return std::size_t{0};
    std::size_t n = std::min<std::size_t>(out.size(), d.size() - pos);
    std::copy_n(d.begin() + static_cast<std::ptrdiff_t>(pos), n, out.begin());
    return n;
  }

  result<void> append(std::span<const std::byte> data) override {
    std::lock_guard lock(s_->mu);
    if (epoch_ != s_->epoch) return err(std::errc::io_error);
    std::size_t n = data.size();
    std::error_code fail;
    if (s_->short_write && path_.find(s_->short_write->filter) != std::string::npos) {
      n = std::min(n, s_->short_write->bytes);
      fail = s_->short_write->ec;
      s_->short_write.reset();
    }
    if (s_->capacity) {
      std::uint64_t used = s_->used();
      std::uint64_t room = used >= *s_->capacity ? 0 : *s_->capacity - used;
      if (n > room) {
        n = static_cast<std::size_t>(room);
        fail = err(std::errc::no_space_on_device);
      }
    }
    node_->data.insert(node_->data.end(), data.begin(),
                       data.begin() + static_cast<std::ptrdiff_t>(n));
    if (fail) return fail;
    return success();
  }

  result<void> sync() override {
    std::lock_guard lock(s_->mu);
    if (epoch_ != s_->epoch) return err(std::errc::io_error);
    if (auto ec = s_->sync_fault_for(path_)) return ec;
    node_->durable = node_->data;
    ++s_->syncs;
    return success();
  }

  result<void> truncate(std::uint64_t size) override {
    std::lock_guard lock(s_->mu);
    if (epoch_ != s_->epoch) return err(std::errc::io_error);
    node_->data.resize(size);
    return success();
  }

  std::uint64_t size() const override {
    std::lock_guard lock(s_->mu);
    return node_->data.size();
  }

 private:
  std::shared_ptr<mem_env::state> s_;
  std::shared_ptr<inode> node_;
  std::string path_;
  std::uint64_t epoch_;
};

}  // namespace

mem_env::mem_env() : s_(std::make_shared<state>()) {
  s_->dirs["/"];
  s_->dirs["."];
}

mem_env::~mem_env() = default;

result<std::unique_ptr<file>> mem_env::open(const fs::path& p, open_mode mode) {
  std::lock_guard lock(s_->mu);
  auto key = norm(p);
  auto* dir = s_->find_dir(parent_of(key));
  if (dir == nullptr) return err(std::errc::no_such_file_or_directory);
  auto name = name_of(key);
  auto it = dir->files.find(name);
  std::shared_ptr<inode> node;
  if (it == dir->files.end()) {
    if (mode == open_mode::read_only || mode == open_mode::read_write)
      return err(std::errc::no_such_file_or_directory);
    if (s_->dirs.count(key)) return err(std::errc::is_a_directory);
    node = std::make_shared<inode>();
    dir->files[name] = node;
  } else {
    if (mode == open_mode::create_new) return err(std::errc::file_exists);
    node = it->second;
  }
  return std::unique_ptr<file>(std::make_unique<mem_file>(s_, node, key, s_->epoch));
}

result<std::vector<std::string>> mem_env::list_dir(const fs::path& d) {
  std::lock_guard lock(s_->mu);
  auto* dir = s_->find_dir(norm(d));
  if (dir == nullptr) return err(std::errc::no_such_file_or_directory);
  std::vector<std::string> names;
  for (const auto& [n, _] : dir->files) names.push_back(n);
  for (const auto& n : dir->subdirs) names.push_back(n);
  return names;
}

result<void> mem_env::create_dirs(const fs::path& d) {
  std::lock_guard lock(s_->mu);
  auto key = norm(d);
  std::vector<std::string> chain;
  for (auto k = key; !s_->dirs.count(k); k = parent_of(k)) {
    if (k.empty()) break;
    chain.push_back(k);
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    auto parent = parent_of(*it);
    auto* pd = s_->find_dir(parent.empty() ? "." : parent);
    if (pd == nullptr) return err(std::errc::no_such_file_or_directory);
    if (pd->files.count(name_of(*it))) return err(std::errc::not_a_directory);
    pd->subdirs.insert(name_of(*it));
    s_->dirs[*it];
  }
  return success();
}

result<void> mem_env::remove_file(const fs::path& p) {
  std::lock_guard lock(s_->mu);
  auto key = norm(p);
  auto* dir = s_->find_dir(parent_of(key));
  if (dir == nullptr || dir->files.erase(name_of(key)) == 0)
    return err(std::errc::no_such_file_or_directory);
  return success();
}

result<void> mem_env::remove_dir(const fs::path& p) {
  std::lock_guard lock(s_->mu);
  auto key = norm(p);
  auto* d = s_->find_dir(key);
  if (d == nullptr) return err(std::errc::no_such_file_or_directory);
  if (!d->files.empty() || !d->subdirs.empty()) return err(std::errc::directory_not_empty);
  if (auto* pd = s_->find_dir(parent_of(key))) pd->subdirs.erase(name_of(key));
  s_->dirs.erase(key);
  return success();
}

result<void> mem_env::rename(const fs::path& from, const fs::path& to) {
  std::lock_guard lock(s_->mu);
  auto fk = norm(from), tk = norm(to);
  auto* fd = s_->find_dir(parent_of(fk));
  auto* td = s_->find_dir(parent_of(tk));
  if (fd == nullptr || td == nullptr) return err(std::errc::no_such_file_or_directory);
  auto it = fd->files.find(name_of(fk));
  if (it == fd->files.end()) return err(std::errc::no_such_file_or_directory);
  auto node = it->second;
  fd->files.erase(it);
  td->files[name_of(tk)] = node;
  return success();
}

result<void> mem_env::sync_dir(const fs::path& d) {
  std::lock_guard lock(s_->mu);
  auto key = norm(d);
  auto* dir = s_->find_dir(key);
  if (dir == nullptr) return err(std::errc::no_such_file_or_directory);
  if (auto ec = s_->sync_fault_for(key)) return ec;
  dir->durable_files = dir->files;
  dir->durable_subdirs = dir->subdirs;
  ++s_->syncs;
  return success();
}

result<bool> mem_env::exists(const fs::path& p) {
  std::lock_guard lock(s_->mu);
  auto key = norm(p);
  if (s_->dirs.count(key)) return true;
  auto* dir = s_->find_dir(parent_of(key));
  return dir != nullptr && dir->files.count(name_of(key)) > 0;
}

result<std::uint64_t> mem_env::file_size(const fs::path& p) {
  std::lock_guard lock(s_->mu);
  auto key = norm(p);
  auto* dir = s_->find_dir(parent_of(key));
  if (dir == nullptr) return err(std::errc::no_such_file_or_directory);
  auto it = dir->files.find(name_of(key));
  if (it == dir->files.end()) return err(std::errc::no_such_file_or_directory);
  return static_cast<std::uint64_t>(it->second->data.size());
}

void mem_env::crash(crash_mode mode, std::uint64_t seed) {
  std::lock_guard lock(s_->mu);
  std::mt19937_64 rng(seed);
  ++s_->epoch;
  std::map<std::string, dir_node> kept;
  std::deque<std::string> todo{"/", "."};
  std::set<inode*> done;
  while (!todo.empty()) {
    auto key = todo.front();
    todo.pop_front();
    auto it = s_->dirs.find(key);
    if (it == s_->dirs.end()) continue;
    dir_node d = std::move(it->second);
    d.files = d.durable_files;
    d.subdirs.clear();
    for (const auto& sub : d.durable_subdirs) {
      auto child = key == "." ? sub : (fs::path(key) / sub).string();
      if (s_->dirs.count(child)) {
        d.subdirs.insert(sub);
        todo.push_back(child);
      }
    }
    d.durable_subdirs = d.subdirs;
    for (auto& [_, node] : d.files) {
      if (!done.insert(node.get()).second) continue;
      auto& data = node->data;
      const auto& dur = node->durable;
      bool extends = data.size() > dur.size() && std::equal(dur.begin(), dur.end(), data.begin());
      if (mode != crash_mode::drop_unsynced && extends) {
        std::size_t extra = data.size() - dur.size();
        std::size_t keep = std::uniform_int_distribution<std::size_t>(0, extra)(rng);
        data.resize(dur.size() + keep);
      } else {
        data = dur;
      }
      if (mode == crash_mode::keep_prefix_and_garbage) {
        std::size_t n = std::uniform_int_distribution<std::size_t>(1, 64)(rng);
        for (std::size_t i = 0; i < n; ++i) data.push_back(static_cast<std::byte>(rng()));
      }
      node->durable = data;
    }
    kept[key] = std::move(d);
  }
  s_->dirs = std::move(kept);
}

void mem_env::fail_syncs(std::error_code ec, std::string filter) {
  std::lock_guard lock(s_->mu);
  s_->sync_faults.push_back({ec, std::move(filter), -1});
}

void mem_env::fail_next_syncs(int count, std::error_code ec, std::string filter) {
  std::lock_guard lock(s_->mu);
  s_->sync_faults.push_back({ec, std::move(filter), count});
}

void mem_env::set_capacity(std::uint64_t bytes) {
  std::lock_guard lock(s_->mu);
  s_->capacity = bytes;
}

void mem_env::short_write_next(std::size_t bytes, std::error_code ec, std::string filter) {
  std::lock_guard lock(s_->mu);
  s_->short_write = short_write_fault{bytes, ec, std::move(filter)};
}

void mem_env::clear_faults() {
  std::lock_guard lock(s_->mu);
  s_->sync_faults.clear();
  s_->capacity.reset();
  s_->short_write.reset();
}

std::optional<std::vector<std::byte>> mem_env::contents(const fs::path& p) const {
  std::lock_guard lock(s_->mu);
  auto key = norm(p);
  auto* dir = s_->find_dir(parent_of(key));
  if (dir == nullptr) return std::nullopt;
  auto it = dir->files.find(name_of(key));
  if (it == dir->files.end()) return std::nullopt;
  return it->second->data;
}

void mem_env::corrupt(const fs::path& p,
                      const std::function<void(std::vector<std::byte>&)>& mutate) {
  std::lock_guard lock(s_->mu);
  auto key = norm(p);
  auto* dir = s_->find_dir(parent_of(key));
  if (dir == nullptr) return;
  auto it = dir->files.find(name_of(key));
  if (it == dir->files.end()) return;
  mutate(it->second->data);
  it->second->durable = it->second->data;
}

std::uint64_t mem_env::total_bytes() const {
  std::lock_guard lock(s_->mu);
  return s_->used();
}

std::uint64_t mem_env::sync_count() const {
  std::lock_guard lock(s_->mu);
  return s_->syncs;
}

}  // namespace ferry::storage
