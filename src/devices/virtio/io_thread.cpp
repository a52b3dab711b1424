#include "devices/virtio/io_thread.h"

#include <pthread.h>

namespace nimbus::devices {

IoThread::IoThread(std::string name) : name_(std::move(name)), thread_([this] { run(); }) {}

IoThread::~IoThread() { stop(); }

void IoThread::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    tasks_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void IoThread::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

size_t IoThread::backlog() {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.size();
}

void IoThread::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return stopping_ || (tasks_.empty() && !busy_); });
}

void IoThread::run() {
  // The kernel keeps at most 15 characters of a thread name.
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
    if (stopping_) break;
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    busy_ = true;
    lock.unlock();
    task();
    lock.lock();
    busy_ = false;
    if (tasks_.empty()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

}  // namespace nimbus::devices
