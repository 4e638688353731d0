// A fixed pool of worker threads for the kernels: run(fn) calls fn(ith, nth) once on each of the
// pool's nth threads (the caller is ith 0) and returns when all have finished. Wake-up is a short
// spin on an atomic generation counter, then a condition variable, so back-to-back runs (about a
// hundred per token) cost microseconds while an idle pool sleeps.
#pragma once
#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace baton {

class ThreadPool {
 public:
  // threads < 1 is treated as 1. threads == 1 runs every job inline on the caller.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return nth_; }

  // Calls fn(ith, nth) for ith in [0, nth), ith 0 on the calling thread, and blocks until every
  // call has returned. If a call throws, the first exception is rethrown here after all calls
  // have finished. Calls from several threads at once are serialized.
  void run(const std::function<void(int ith, int nth)>& fn);

 private:
  void worker(int ith);

  int nth_;
  std::vector<std::thread> threads_;
  std::mutex run_mu_;  // serializes run()

  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace baton
