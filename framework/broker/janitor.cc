#include "janitor.h"

#include "ferry/core/logging.h"

namespace ferry::broker {

janitor::janitor() : thread_([this] { loop(); }) {}

janitor::~janitor() {
  stop();
}

void janitor::post(unique_function<void()> task) {
  {
    unique_lock lock(mu_);
    if (!stopped_) {
      tasks_.push_back(std::move(task));
      cv_.notify_one();
      return;
    }
  }
  task();
}

void janitor::stop() {
  {
    unique_lock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::size_t janitor::backlog() {
  unique_lock lock(mu_);
  return tasks_.size();
}

void janitor::loop() {
  for (;;) {
    unique_function<void()> task;
    {
      unique_lock lock(mu_);
      lock.wait(cv_, [&] {
        mu_.assert_held();
        return !tasks_.empty() || stopping_;
      });
      if (tasks_.empty()) {
        stopped_ = true;
        return;
      }
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      log::get("broker")->warn("janitor: a clean-up task failed: {}", e.what());
    }
  }
}

}  // namespace ferry::broker
