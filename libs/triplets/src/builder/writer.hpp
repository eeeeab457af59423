#pragma once
// triplet-build's ordered background writer (private to libs/triplets).
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <tbb/concurrent_queue.h>

namespace emt::triplets::builder {

/// Runs jobs (writing a finished shard: HDF5, fsync, hashing) on one
/// background thread in submission order, so the pipeline's serial stage
/// does not wait on them. At most `max_pending` jobs wait in memory; submit()
/// blocks beyond that. After a job fails, later ones are skipped and the
/// failure is rethrown by the next submit() or drain().
class OrderedWriter {
 public:
  using Job = std::function<void()>;
  explicit OrderedWriter(std::size_t max_pending);
  ~OrderedWriter();  ///< waits for the submitted jobs (errors are dropped: call drain() to see them)
  OrderedWriter(const OrderedWriter&) = delete;
  OrderedWriter& operator=(const OrderedWriter&) = delete;

  void submit(Job job);
  /// Waits until every submitted job ran; rethrows the first failure.
  void drain();

 private:
  /// A job, a barrier (`done` set when every earlier item ran, failed or
  /// not), or the stop item (neither).
  struct Item {
    Job job;
    std::promise<void>* done = nullptr;
  };
  void loop();
  void rethrow();
  tbb::concurrent_bounded_queue<Item> queue_;
  std::mutex mutex_;
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace emt::triplets::builder
