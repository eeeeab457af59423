#include "builder/writer.hpp"

namespace emt::triplets::builder {

OrderedWriter::OrderedWriter(std::size_t max_pending) {
  queue_.set_capacity(static_cast<std::ptrdiff_t>(max_pending));
  worker_ = std::thread([this] { loop(); });
}

OrderedWriter::~OrderedWriter() {
  queue_.push(Item{});  // stops the thread after every item submitted so far
  worker_.join();
}

void OrderedWriter::loop() {
  for (;;) {
    Item item;
    queue_.pop(item);
    if (item.done) {
      item.done->set_value();
      continue;
    }
    if (!item.job) return;
    bool failed;
    {
      std::lock_guard lock(mutex_);
      failed = error_ != nullptr;
    }
    if (failed) continue;  // the build is failing: later shards would not be used
    try {
      item.job();
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
    }
  }
}

void OrderedWriter::rethrow() {
  std::lock_guard lock(mutex_);
  if (error_) {
    auto e = error_;
    error_ = nullptr;  // reported once
    std::rethrow_exception(e);
  }
}

void OrderedWriter::submit(Job job) {
  rethrow();
  queue_.push(Item{std::move(job), nullptr});
}

void OrderedWriter::drain() {
  std::promise<void> done;
  queue_.push(Item{Job(), &done});
  done.get_future().wait();
  rethrow();
}

}  // namespace emt::triplets::builder
