// triplet-build's ordered background writer (libs/triplets/src/builder/writer.hpp).
#include <atomic>
#include <future>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "builder/writer.hpp"

namespace emt::triplets::builder {

TEST(OrderedWriter, RunsJobsInSubmissionOrderWithBoundedBacklog) {
  std::vector<int> order;
  {
    OrderedWriter w(2);
    for (int i = 0; i < 50; ++i) w.submit([&order, i] { order.push_back(i); });
    w.drain();
    ASSERT_EQ(order.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
    w.submit([&order] { order.push_back(50); });
  }  // the destructor waits for the last job
  EXPECT_EQ(order.size(), 51u);
}

TEST(OrderedWriter, AFailureSkipsLaterJobsAndIsRethrownOnce) {
  OrderedWriter w(4);
  std::atomic<int> ran{0};
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  w.submit([&, open] {
    open.wait();  // the next two are queued before anything fails
    ++ran;
  });
  w.submit([] { throw std::runtime_error("disk full"); });
  w.submit([&] { ++ran; });  // behind the failure: skipped
  gate.set_value();
  EXPECT_THROW(w.drain(), std::runtime_error);
  EXPECT_EQ(ran.load(), 1);
  w.drain();  // reported once; the writer still works
  w.submit([&] { ++ran; });
  w.drain();
  EXPECT_EQ(ran.load(), 2);
}

}  // namespace emt::triplets::builder
