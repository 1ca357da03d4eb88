// Applies the test migration chain and kills itself with SIGKILL part way: the migrator tests
// run it to prove that a run killed at any point resumes correctly (test_migrator.cpp).
//
// Usage: cloudmysql_migrate_victim URL DATABASE MODE N
//   URL       the server (mysql://...); DATABASE replaces its database
//   MODE N    started:  SIGKILL at the N-th step_started event (before step N runs)
//             finished: SIGKILL at the N-th step_finished event (step N and its journal entry
//                       are committed)
//             timer:    SIGKILL from another thread N microseconds after the first progress
//                       event (the lock is held, the first migration starts), wherever the
//                       run is then (after the run, if it finished first)
// It never exits normally: 2 is bad usage, 3 the run failed, 4 the run finished before the
// N-th event.
#include "migration_chain.hpp"

#include <cloudmysql/migrator.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>

namespace {

[[noreturn]] void die() {
    ::kill(::getpid(), SIGKILL);
    for (;;)
        ::pause();
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s URL DATABASE started|finished|timer N\n", argv[0]);
        return 2;
    }
    const std::string_view mode = argv[3];
    const long n = std::stol(argv[4]);
    if ((mode != "started" && mode != "finished" && mode != "timer") || n < 0) {
        std::fprintf(stderr, "bad mode or N\n");
        return 2;
    }
    std::thread killer;
    try {
        auto target = cloudmysql::connect_options::from_url(argv[1]);
        target.database = argv[2];
        cloudmysql::migrator_options options;
        long events = 0;
        options.on_progress = [&](const cloudmysql::migration_event& e) {
            using kind = cloudmysql::migration_event::kind;
            if (mode == "timer" && !killer.joinable())
                killer = std::thread([n] {
                    std::this_thread::sleep_for(std::chrono::microseconds(n));
                    die();
                });
            if ((mode == "started" && e.what == kind::step_started) ||
                (mode == "finished" && e.what == kind::step_finished)) {
                if (++events == n)
                    die();
            }
        };
        cloudmysql::migrator m(target, cloudmysql::test::test_chain(), options);
        m.up();
        if (killer.joinable())
            killer.join(); // dies there
        std::fprintf(stderr, "the run finished before the kill point\n");
        return 4;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "migrate_victim: %s\n", e.what());
        std::_Exit(3); // the killer thread may still run
    }
}
