// Worker threads that a test stops and joins, also when an assertion throws while they run
// (a joinable std::thread going out of scope would end the program), and a bounded poll.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

namespace cloudmysql::test {

/// Polls `done` up to `tries` times, `pause` apart; true once it holds.
inline bool eventually(const std::function<bool()>& done, int tries,
                       std::chrono::milliseconds pause) {
    for (int i = 0; i < tries; ++i) {
        if (done())
            return true;
        std::this_thread::sleep_for(pause);
    }
    return done();
}

/// Starts threads that watch `stop`; join() (or the destructor) sets it and waits for them.
/// Declare it after everything the threads use, so that it goes first.
class stopping_threads {
public:
    explicit stopping_threads(std::atomic<bool>& stop) : stop_(stop) {}
    stopping_threads(const stopping_threads&) = delete;
    stopping_threads& operator=(const stopping_threads&) = delete;
    ~stopping_threads() { join(); }

    template <class F>
    void start(F f) {
        threads_.emplace_back(std::move(f));
    }

    void join() {
        stop_ = true;
        for (auto& t : threads_)
            t.join();
        threads_.clear();
    }

private:
    std::atomic<bool>& stop_;
    std::vector<std::thread> threads_;
};

} // namespace cloudmysql::test
